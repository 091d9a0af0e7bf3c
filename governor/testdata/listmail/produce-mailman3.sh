#!/bin/bash
# Captures what GNU Mailman 3 really sends for list administration and for
# a post, as fixtures for governor/listmail_test.go. Run as root on Debian
# bookworm with `apt-get install mailman3` (3.3.8); everything lives in a
# temporary directory and on loopback ports, the packaged service is not
# used. Writes mailman3/*.eml and mailman3/envelopes beside this script.
#
#   ./produce-mailman3.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d /tmp/listadmin-mm.XXXXXX)
SMTP=18625 LMTP=18624 REST=18601
PY=/usr/bin/python3

cat >"$W/mailman.cfg" <<CFG
[mailman]
site_owner: postmaster@example.org
layout: fixture
[paths.fixture]
var_dir: $W/var
bin_dir: /usr/lib/mailman3/bin
[database]
class: mailman.database.sqlite.SQLiteDatabase
url: sqlite:///\$DATA_DIR/mailman.db
[webservice]
hostname: 127.0.0.1
port: $REST
admin_user: restadmin
admin_pass: fixture
[mta]
incoming: mailman.mta.null.NullMTA
outgoing: mailman.mta.deliver.deliver
smtp_host: 127.0.0.1
smtp_port: $SMTP
lmtp_host: 127.0.0.1
lmtp_port: $LMTP
CFG

$PY "$here/capture.py" $SMTP "$W/out" &
capture=$!
mm() { mailman -C "$W/mailman.cfg" --run-as-root "$@"; }
trap 'mm stop >/dev/null 2>&1 || true; kill $capture 2>/dev/null || true' EXIT

# Hand a message to Mailman's LMTP runner, as the MTA would.
lmtp() { # from to subject body
	$PY - "$LMTP" "$@" <<'PYEOF'
import smtplib, sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
port, frm, to, subject, body = sys.argv[1:]
m = EmailMessage()
m["From"], m["To"], m["Subject"] = frm, to, subject
m["Date"], m["Message-ID"] = formatdate(), make_msgid(domain="example.com")
m.set_content(body)
with smtplib.LMTP("127.0.0.1", int(port)) as c:
    c.send_message(m)
PYEOF
}
# Wait until the capture server has n messages.
wait_for() {
	for _ in $(seq 300); do
		[ "$(wc -l <"$W/out/envelopes" 2>/dev/null || echo 0)" -ge "$1" ] && return
		sleep 1
	done
	echo "timed out waiting for message $1" >&2; exit 1
}
# The token of the newest confirmation, from its confirm+TOKEN address.
token() { grep -ho 'dev-confirm+[0-9a-f]*@' "$W"/out/*.eml | tail -1 | sed 's/dev-confirm+//; s/@//'; }

mm start
# The runners take a while to start on a busy machine.
up=
for _ in $(seq 300); do
	$PY -c "import socket; socket.create_connection(('127.0.0.1', $LMTP), 1)" 2>/dev/null && { up=1; break; }
	sleep 1
done
[ -n "$up" ] || { echo "Mailman's LMTP runner did not start" >&2; exit 1; }
mm create -o owner@example.org dev@lists.example.org

n=0
lmtp ann@example.com dev-join@lists.example.org "subscribe" ""; n=$((n+1)); wait_for $n          # confirmation
t=$(token)
lmtp ann@example.com "dev-confirm+$t@lists.example.org" "Re: confirm $t" ""; n=$((n+1)); wait_for $n   # welcome
lmtp ann@example.com dev@lists.example.org "Release notes" "The new release is out."; n=$((n+1)); wait_for $n # post
lmtp ann@example.com dev-leave@lists.example.org "unsubscribe" ""; n=$((n+1)); wait_for $n       # unsubscribe confirmation
t=$(token)
lmtp ann@example.com "dev-confirm+$t@lists.example.org" "Re: confirm $t" ""; n=$((n+1)); wait_for $n   # goodbye
# A digest: bob joins in MIME digest mode (welcomed, added by the admin
# rather than confirmed), posts, and the collected digest is sent.
echo bob@example.com | mm addmembers -d mime - dev@lists.example.org; n=$((n+1)); wait_for $n  # welcome (digest mode)
lmtp bob@example.com dev@lists.example.org "Build failure" "The nightly build fails."; sleep 5 # only digest members: nothing sent
mm digests -s -l dev@lists.example.org; n=$((n+1)); wait_for $n                               # the digest
sleep 5 # anything else Mailman sends (owner notices) arrives too

mkdir -p "$here/mailman3"
rm -f "$here"/mailman3/*.eml "$here/mailman3/envelopes"
cp "$W"/out/*.eml "$W/out/envelopes" "$here/mailman3/"
echo "captured $(wc -l <"$W/out/envelopes") messages into $here/mailman3 (work dir $W)"
