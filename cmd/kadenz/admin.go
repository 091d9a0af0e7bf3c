package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Commands that touch state talk to the running daemon's admin API: bbolt
// locks the database file, and a second process must never open it.

// adminFlags are the flags every admin-API command shares.
type adminFlags struct {
	addr, token *string
}

func addAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{
		addr:  fs.String("admin", envOr("KADENZ_ADMIN", "127.0.0.1:8025"), "admin API `address` of the running kadenz (env KADENZ_ADMIN)"),
		token: fs.String("token", os.Getenv("KADENZ_ADMIN_TOKEN"), "admin API bearer `token` (env KADENZ_ADMIN_TOKEN)"),
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// adminTimeout bounds one admin call; imports and exports of a large
// suppression list are the slowest.
const adminTimeout = 5 * time.Minute

// do sends a request to the admin API and returns the body of a 2xx
// answer; anything else is an error carrying the daemon's message.
func (a adminFlags) do(method, path, contentType string, body []byte) ([]byte, error) {
	out, _, err := a.call(method, path, contentType, body)
	return out, err
}

// call is do that also returns the answer's header.
func (a adminFlags) call(method, path, contentType string, body []byte) ([]byte, http.Header, error) {
	req, err := http.NewRequest(method, "http://"+*a.addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	if *a.token != "" {
		req.Header.Set("Authorization", "Bearer "+*a.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Timeout: adminTimeout}).Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("reaching kadenz's admin API (is serve running with --admin %s?): %w", *a.addr, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(out))
	}
	return out, resp.Header, nil
}

// get fetches path from the admin API into v.
func (a adminFlags) get(path string, v any) error {
	out, err := a.do(http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	return json.Unmarshal(out, v)
}

// post sends body as JSON to path and decodes the answer into v.
func (a adminFlags) post(path string, body, v any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	out, err := a.do(http.MethodPost, path, "application/json", b)
	if err != nil {
		return err
	}
	return json.Unmarshal(out, v)
}

// getPage fetches one page of a list into v and returns the after token
// of the next page: the after parameter of the answer's Link rel="next"
// (RFC 8288), "" on the last page.
func (a adminFlags) getPage(path string, v any) (string, error) {
	out, h, err := a.call(http.MethodGet, path, "", nil)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return "", err
	}
	return nextAfter(h.Values("Link")), nil
}

// nextAfter finds the after parameter of the rel="next" link.
func nextAfter(links []string) string {
	for _, header := range links {
		for _, link := range strings.Split(header, ",") {
			target, params, ok := strings.Cut(strings.TrimSpace(link), ";")
			if !ok || !strings.Contains(params, `rel="next"`) {
				continue
			}
			u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
			if err == nil {
				return u.Query().Get("after")
			}
		}
	}
	return ""
}
