package tests

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// smtplibScript plays a CRM written in Python: each scenario on its own
// connection, the outcome printed as one JSON object. Certificate checks are
// off because the test's certificate is self-signed.
const smtplibScript = `
import base64, json, smtplib, ssl, sys

host, port, user, password, good_file, bad_file = sys.argv[1:7]
port = int(port)
good = open(good_file, "rb").read()
bad = open(bad_file, "rb").read()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
FROM, TO = "crm@sender.test", ["someone@receiver.test"]
res = {}

def attempt(name, fn):
    try:
        res[name] = {"ok": True, "code": 250, "detail": fn()}
    except smtplib.SMTPRecipientsRefused as e:
        res[name] = {"ok": False, "code": min(c for c, _ in e.recipients.values()), "error": repr(e)}
    except smtplib.SMTPResponseException as e:
        res[name] = {"ok": False, "code": e.smtp_code, "error": repr(e)}
    except Exception as e:
        res[name] = {"ok": False, "code": 0, "error": repr(e)}

def plain_noauth():
    with smtplib.SMTP(host, port, timeout=20) as s:
        s.sendmail(FROM, TO, bad)

def tls_noauth():
    with smtplib.SMTP(host, port, timeout=20) as s:
        s.starttls(context=ctx)
        s.sendmail(FROM, TO, bad)

def auth_before_tls():
    with smtplib.SMTP(host, port, timeout=20) as s:
        s.ehlo()
        advertised = s.has_extn("auth")
        ir = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        code, msg = s.docmd("AUTH", "PLAIN " + ir)
        if code != 235:
            raise smtplib.SMTPResponseException(code, msg)
        return {"advertised": advertised}

def wrong_password():
    with smtplib.SMTP(host, port, timeout=20) as s:
        s.starttls(context=ctx)
        s.login(user, password + "x")

def good_submission():
    with smtplib.SMTP(host, port, timeout=20) as s:
        s.starttls(context=ctx)
        s.login(user, password)
        return s.sendmail(FROM, TO, good)

attempt("plain_noauth", plain_noauth)
attempt("tls_noauth", tls_noauth)
attempt("auth_before_tls", auth_before_tls)
attempt("wrong_password", wrong_password)
attempt("good", good_submission)
print(json.dumps(res))
`

// TestPythonSmtplibStartTLSAuth is a CRM that must authenticate: no client
// network may submit without AUTH, AUTH needs STARTTLS first, and a good
// login over TLS gets the message through to the outbox byte for byte.
func TestPythonSmtplibStartTLSAuth(t *testing.T) {
	python := requireProgram(t, "python3")
	dir := t.TempDir()
	certFile, keyFile := writeSelfSignedCert(t, dir)
	const user, password = "crm", "correct horse battery staple"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`
intake:
  tls:
    cert_file: %q
    key_file: %q
  users:
    - name: %s
      password_hash: %q
  client_networks: []
`, certFile, keyFile, user, hash)
	r := startRelay(t, relayOptions{Config: config})

	good := []byte("From: <crm@sender.test>\r\nTo: <someone@receiver.test>\r\nSubject: smtplib over STARTTLS\r\n" +
		"Message-ID: <smtplib-good@sender.test>\r\n\r\nauthenticated and encrypted\r\n.leading dot\r\n")
	bad := []byte("From: <crm@sender.test>\r\nTo: <someone@receiver.test>\r\nSubject: should be refused\r\n" +
		"Message-ID: <smtplib-refused@sender.test>\r\n\r\nno AUTH, no relay\r\n")
	script := filepath.Join(dir, "crm.py")
	goodFile, badFile := filepath.Join(dir, "good.eml"), filepath.Join(dir, "bad.eml")
	for f, b := range map[string][]byte{script: []byte(smtplibScript), goodFile: good, badFile: bad} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := net.SplitHostPort(r.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, python, script, host, port, user, password, goodFile, badFile)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s%s", err, out, stderr.Bytes())
	}
	var res map[string]struct {
		OK     bool            `json:"ok"`
		Code   int             `json:"code"`
		Error  string          `json:"error"`
		Detail json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("python3 output %q: %v", out, err)
	}
	t.Logf("smtplib: %s", bytes.TrimSpace(out))

	for _, name := range []string{"plain_noauth", "tls_noauth", "auth_before_tls", "wrong_password"} {
		got := res[name]
		if got.OK || got.Code < 500 || got.Code > 599 {
			t.Errorf("%s: want a 5xx refusal, got ok=%v code=%d %s", name, got.OK, got.Code, got.Error)
		}
	}
	if got := res["good"]; !got.OK {
		t.Fatalf("STARTTLS + AUTH + sendmail failed: code=%d %s", got.Code, got.Error)
	}

	var files []string
	if !waitFor(30*time.Second, func() bool { files = r.outbox(); return len(files) > 0 }) {
		t.Fatalf("nothing in %s/outbox 30s after the 250", r.Data)
	}
	// The refused messages came first: had either slipped through, it would
	// be in the outbox by now as well.
	if len(files) != 1 {
		t.Fatalf("outbox has %d messages, want only the authenticated one: %v", len(files), files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, good) {
		t.Errorf("outbox file does not end with the submitted bytes:\n%q\nwant suffix:\n%q", b, good)
	}
	if strings.Contains(string(b), "should be refused") {
		t.Errorf("a refused message reached the outbox")
	}
	r.stop(15 * time.Second)
}

// writeSelfSignedCert writes a fresh ECDSA certificate for localhost and
// 127.0.0.1, valid for an hour, and its key, as PEM files.
func writeSelfSignedCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
