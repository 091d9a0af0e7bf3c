package governor

import (
	"net/mail"
	"strings"
)

// A list manager's administrative mail (subscription confirmations,
// welcome and goodbye notices, reminders) is mail a person is waiting for,
// but most list managers put the list's bulk markers on it as on the posts
// and send it from the same envelope sender. listAdministrative recognises
// it from what each list manager really puts on it, read from mail the
// programs produced (governor/testdata/listmail, docs/governor.md "Mailing
// lists"). Each rule rests on a mark the tool sets itself and on one its
// posts always carry and its administrative mail never does, so that a post
// cannot pass for administrative mail by accident:
//
//   - Mailman 2 marks administrative mail X-List-Administrivia: yes.
//   - Mailman 3 adds List-Post (an address, or NO on an announce-only list)
//     to every post and digest, and never to the notices it composes itself
//     (handlers/rfc_2369.py: reduced_list_headers). Administrative mail is
//     therefore X-Mailman-Version 3.x with a List-Id and no List-Post.
//   - Sympa drops incoming mail that carries Auto-Submitted as a loop
//     (Spindle/ProcessIncoming.pm), so no post carries it, while every
//     message Sympa composes does and names Sympa in X-Mailer. Its digests
//     are composed too but get the list's List-Id; its notices carry none.
//   - listmonk marks every mail to a subscriber X-Listmonk-Subscriber and
//     campaign mail, alone, X-Listmonk-Campaign.
//
// Mautic is left out on purpose: its double opt-in and welcome mails are
// ordinary emails the marketer writes, with the same headers as any other
// (docs/governor.md).
//
// The reason names the tool and the headers, for explain.
func listAdministrative(h mail.Header) (reason string, ok bool) {
	// The names are indexed as net/mail stores them, canonical
	// (textproto.CanonicalMIMEHeaderKey): h.Get would canonicalise each name
	// again on every message accepted.
	has := func(name string) bool { return len(h[name]) > 0 }
	first := func(name string) string {
		if v := h[name]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	if v := first("X-List-Administrivia"); v != "" && strings.EqualFold(v, "yes") {
		return "list administrative mail (Mailman 2: X-List-Administrivia: yes)", true
	}
	if strings.HasPrefix(first("X-Mailman-Version"), "3.") && has("List-Id") && !has("List-Post") {
		return "list administrative mail (Mailman 3: X-Mailman-Version 3, List-Id without List-Post)", true
	}
	if as := strings.ToLower(first("Auto-Submitted")); as != "" && as != "no" &&
		hasWordPrefix(first("X-Mailer"), "sympa") && !has("List-Id") {
		return "list administrative mail (Sympa: X-Mailer Sympa, Auto-Submitted: " + as + ", no List-Id)", true
	}
	if has("X-Listmonk-Subscriber") && !has("X-Listmonk-Campaign") {
		return "list administrative mail (listmonk: X-Listmonk-Subscriber without X-Listmonk-Campaign)", true
	}
	return "", false
}

// hasWordPrefix reports whether s begins with the lower-case word w, in any
// letter case, followed by the end or a space ("Sympa 6.2.70"); s is
// trimmed.
func hasWordPrefix(s, w string) bool {
	return len(s) >= len(w) && strings.EqualFold(s[:len(w)], w) && (len(s) == len(w) || s[len(w)] == ' ')
}
