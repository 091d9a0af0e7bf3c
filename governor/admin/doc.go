// Package admin is Kadenz's admin listener: the HTTP API an operator and
// the command line use (queue, explain, feedback events, the suppression
// list, reports, erasure, campaigns, the virtual clock, backups) and the
// dashboard for people (/ui/). The JSON it speaks is governor/admin/api.
//
// It is built from what it is handed (Options): the store, the engine, the
// live configuration and a few hooks into the daemon around it (Relay). It
// holds no state of its own beyond dashboard sessions and the login
// limiter, and it never reaches into the relay.
//
// It listens on loopback unless a token is set: state must never be
// readable or changeable from the network without a credential. Every
// request passes the guard (guard.go: Host, cross-site, media type), then
// the bearer token (the dashboard checks its own sessions), then input
// rules (input.go).
package admin
