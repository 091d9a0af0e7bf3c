package report

import (
	"strings"
)

// The classification policy: one place that turns what a report says about
// one recipient (the DSN Action, the enhanced status code, the reply code and
// the diagnostic text) into a bounce class and a named reason. Every parser
// (RFC 3464, the text families, ESP notifications) and the smarthost path in
// the governor go through [Classify]; docs/feedback.md has the same rules as
// a table.
//
// The class digit of a status code (RFC 3463 section 3.1) says what the
// reporting MTA will do next, not what the recipient's state is. Several
// conditions are transient for the person whatever digit the MTA chose: a
// full mailbox gets emptied, an expired queue lifetime is our mail's age, a
// rate limit or a connection limit is about the sender's pace. Those are
// soft. A refusal of our content or reputation (spam, blocklists, DMARC,
// message size) says nothing about whether the person can be reached, so it
// is a block: reported, never a suppression.

// Reason names why a recipient's delivery failed (or did not).
type Reason string

// Reasons, in the policy's words. Each belongs to one class (see
// reasonRules); ReasonOther takes its class from the status digit.
const (
	ReasonNone            Reason = ""
	ReasonDelivered       Reason = "delivered"
	ReasonUserUnknown     Reason = "user-unknown"
	ReasonHostUnknown     Reason = "host-unknown"
	ReasonMailboxDisabled Reason = "mailbox-disabled"
	ReasonMailboxFull     Reason = "mailbox-full"
	ReasonExpired         Reason = "expired"
	ReasonRateLimited     Reason = "rate-limited"
	ReasonGreylisted      Reason = "greylisted"
	ReasonDelayed         Reason = "delayed"
	ReasonNetwork         Reason = "network"
	ReasonSpamBlock       Reason = "spam-block"
	ReasonReputation      Reason = "reputation-block"
	ReasonAuthFailure     Reason = "auth-failure"
	ReasonPolicyBlock     Reason = "policy-block"
	ReasonTooLarge        Reason = "message-too-large"
	// ReasonSenderRejected: the receiver refused our envelope sender or
	// its domain (X.1.7, X.1.8): a block, the recipient is not at fault.
	ReasonSenderRejected Reason = "sender-rejected"
	// ReasonSuppressed: an ESP refused to send because the address is on
	// its own suppression list after an earlier hard bounce.
	ReasonSuppressed Reason = "esp-suppressed"
	// ReasonRecipientRejected: the recipient's own filter refused our
	// mail (a Sieve reject, RFC 5429): hard.
	ReasonRecipientRejected Reason = "recipient-rejected"
	ReasonOther             Reason = "other"
)

// Describe returns the reason in a few words a marketer reads.
func (r Reason) Describe() string {
	switch r {
	case ReasonUserUnknown:
		return "user unknown"
	case ReasonHostUnknown:
		return "host unknown"
	case ReasonMailboxDisabled:
		return "mailbox disabled"
	case ReasonMailboxFull:
		return "mailbox full"
	case ReasonExpired:
		return "gave up after retrying"
	case ReasonRateLimited:
		return "rate limited"
	case ReasonGreylisted:
		return "greylisted"
	case ReasonDelayed:
		return "delayed"
	case ReasonNetwork:
		return "network or connection failure"
	case ReasonSpamBlock:
		return "refused as spam"
	case ReasonReputation:
		return "sender blocklisted"
	case ReasonAuthFailure:
		return "sender authentication failed"
	case ReasonPolicyBlock:
		return "refused by policy"
	case ReasonSenderRejected:
		return "our sender address refused"
	case ReasonTooLarge:
		return "message too large"
	case ReasonRecipientRejected:
		return "refused by the recipient's own filter"
	case ReasonSuppressed:
		return "on the provider's suppression list"
	case ReasonOther:
		return "other failure"
	}
	return string(r)
}

// rule maps diagnostic phrases (lower case, matched as substrings) and
// enhanced status subject.detail codes to a reason. fixed, when set, is the
// class the reason has whatever the class digit says.
type rule struct {
	// weak rules name a generic refusal; a status code that names a
	// specific reason wins over their phrases.
	weak    bool
	reason  Reason
	fixed   Bounce
	codes   []string // "1.1" matches 4.1.1 and 5.1.1
	phrases []string
}

// reasonRules are tried in order; the first rule whose phrase occurs in the
// diagnostic wins, else the first rule listing the status code. Phrases go
// first because MTAs put a generic code (5.0.0, 5.5.0, 5.7.1) on specific
// texts, and the transient rules go before the permanent ones because a text
// such as "mailbox full, user unknown soon" should not lose a customer.
var reasonRules = []rule{
	// The sender's own quota at a provider is a rate limit, not the
	// recipient's full mailbox.
	{reason: ReasonRateLimited, fixed: SoftBounce, phrases: []string{
		"sending quota", "daily quota", "message quota", "submission quota", "sending limit",
	}},
	{reason: ReasonMailboxFull, fixed: SoftBounce, codes: []string{"2.2", "3.1"}, phrases: []string{
		"mailbox full", "mailbox is full", "mailbox_full", "mailbox has exceeded", "mailbox size limit",
		"over quota", "overquota", "over the quota", "quota exceeded", "exceeded quota", "exceeds quota",
		"quota exceed", "exceeded storage", "exceeded its storage", "insufficient storage", "out of storage",
		"mailbox would exceed", "user is over", "account is full", "inbox is full", "disk quota",
		"storage quota", "not enough space", "no space left", "mailfolder is full", "maildir over quota",
		"full mailbox", "box is full", "has exceeded the maximum", "user has exceeded", "quota full",
		"exceeds allowed size", "exceeds the allowed size", "is full", "いっぱい", "quota",
		"容量", "postfach voll", "boîte pleine", "boite pleine",
	}},
	{reason: ReasonExpired, fixed: SoftBounce, codes: []string{"4.7"}, phrases: []string{
		"retry time exceeded", "retry timeout exceeded", "message expired", "delivery expired",
		"delivery time expired", "too long in queue", "queue lifetime", "has been delayed for",
		"was not delivered within", "could not be delivered within", "expired after", "message timeout",
		"queue time expired", "delivery timed out", "timeout exceeded", "maximum time", "time limit exceeded",
		"giving up after", "gave up on", "have been failing for", "undeliverable for", "in the queue too long",
		"queue too long", "retry time not reached for any host after a long failure period",
	}},
	{reason: ReasonRateLimited, fixed: SoftBounce, codes: []string{"7.28"}, phrases: []string{
		"too many connections", "too many concurrent", "too many messages", "too many recipients this",
		"rate limit", "ratelimit", "rate-limit", "rate that prevents", "receiving mail at a rate",
		"receiving mail too quickly", "throttl", "try again later", "please try later", "try later",
		"temporarily deferred", "temporarily rejected", "temporarily unavailable", "exceeded the rate",
		"sending rate", "unusual rate", "too many sessions", "connection limit", "sending limit",
		"too much mail", "service busy", "server busy", "resources temporarily",
	}},
	{reason: ReasonGreylisted, fixed: SoftBounce, phrases: []string{"greylist", "graylist", "grey-list", "gray-list"}},
	// Content and reputation before the person: "550 5.7.1 message refused
	// as spam" names no missing user, and "sender address rejected: domain
	// not found" is about our domain, not theirs.
	{reason: ReasonSenderRejected, fixed: BlockBounce, codes: []string{"1.7", "1.8"}, phrases: []string{
		"sender address rejected", "sender rejected", "sender domain", "sender verify failed",
		"sender verification failed", "envelope sender", "bad sender", "invalid sender", "sender address invalid",
		"unverified sender", "sender is not allowed", "mail from address", "sender unknown", "unknown sender",
	}},
	{reason: ReasonAuthFailure, fixed: BlockBounce, codes: []string{"7.23", "7.24", "7.25", "7.26", "7.27", "7.30"}, phrases: []string{
		"dmarc", "spf check", "spf fail", "failed spf", "dkim", "unauthenticated", "not authenticated",
		"authentication check", "authentication failed", "sender authentication",
	}},
	{reason: ReasonReputation, fixed: BlockBounce, phrases: []string{
		"blacklist", "blocklist", "block list", "black list", "spamhaus", "spamcop", "barracuda", "sorbs",
		"rbl", "dnsbl", "poor reputation", "bad reputation", "ip reputation", "sender reputation",
		"listed at", "is listed", "blocked using", "on our block", "banned sender", "client host rejected",
		"your ip", "sending ip", "connecting ip",
	}},
	{reason: ReasonSpamBlock, fixed: BlockBounce, codes: []string{"7.1"}, phrases: []string{
		"spam", "junk mail", "content rejected", "message content", "content filter", "unsolicited",
		"bulk mail", "virus", "malware", "phishing", "suspicious", "message refused", "rejected due to content",
		"not accepted for policy reasons", "high probability", "looks like spam", "detected as",
	}},
	{reason: ReasonTooLarge, fixed: BlockBounce, codes: []string{"3.4", "2.3"}, phrases: []string{
		"message too large", "message too big", "message size exceeds", "message is too large",
		"exceeds the maximum message size", "size limit exceeded", "message length exceeds",
	}},
	{reason: ReasonMailboxDisabled, codes: []string{"2.1"}, phrases: []string{
		"account disabled", "account has been disabled", "mailbox disabled", "mailbox is disabled",
		"account is disabled", "inactive", "deactivated", "suspended", "account expired", "mailbox inactive",
		"no longer active", "has been closed", "account closed", "mailbox is closed", "account locked",
		"mailbox locked", "is locked",
	}},
	{reason: ReasonHostUnknown, codes: []string{"1.2", "4.4"}, phrases: []string{
		"host not found", "host unknown", "unknown host", "domain not found", "no such domain",
		"domain does not exist", "name service error", "unrouteable", "unroutable", "no mx", "nxdomain",
		"mx record", "no route to host", "host or domain name not found", "could not be resolved",
		"domain name not found", "does not accept mail", "null mx", "dns error", "unknown domain",
		"no valid mx", "domain is not configured", "unresolvable", "unknown mail host", "no mail servers",
		"no mail server", "no mail exchanger",
	}},
	{reason: ReasonUserUnknown, codes: []string{"1.1", "1.10", "1.6", "1.0", "1.3"}, phrases: []string{
		"user unknown", "unknown user", "no such user", "no such recipient", "no such mailbox",
		"no such address", "unknown recipient", "recipient unknown", "recipient not found", "user not found",
		"does not exist", "doesn't exist", "doesn't have", "not exist", "invalid recipient", "invalid address",
		"invalid mailbox", "mailbox unavailable", "mailbox not found", "mailbox does not", "no mailbox",
		"unknown address", "address unknown", "address rejected", "not a valid", "bad destination",
		"recipient rejected", "addressee unknown", "unknown local", "not our customer", "no account",
		"account does not", "user doesn't", "not listed in", "isn't a valid", "is not a valid", "unrouteable address",
		"no longer", "mailbox name not allowed", "undeliverable address", "unknown or illegal alias",
		"no valid recipients", "has no mailbox", "not found", "wasn't found", "non-existent",
		"nonexistent", "unknown mailbox", "no mailbox here", "user reject", "rejected recipient",
		"recipient address rejected", "unknown alias", "invalid user", "deleted", "no recipients",
		"does not specify a valid", "存在しません", "宛先不明", "見つかりません", "unknown recipient",
	}},
	{reason: ReasonNetwork, weak: true, codes: []string{"4.1", "4.2", "4.0", "4.3", "4.5", "4.6"}, phrases: []string{
		"connection refused", "connection timed out", "connection reset", "lost connection", "network is unreachable",
		"timed out while", "conversation with", "connect to", "starttls", "tls handshake", "certificate",
	}},
	{reason: ReasonPolicyBlock, weak: true, fixed: BlockBounce, codes: []string{"7.0", "7.2", "7.3", "7.4", "7.5", "7.6", "7.7", "7.8", "7.9", "7.10", "7.13", "7.14", "7.15", "7.17", "7.18", "7.19", "7.20", "7.21", "7.22"}, phrases: []string{
		"policy", "relay access denied", "relaying denied", "relay not permitted", "not permitted", "access denied",
		"administrative prohibition", "prohibited", "refused", "blocked", "rejected", "denied",
	}},
}

// Classify is the policy: the class and reason of one recipient's outcome,
// from the DSN Action (RFC 3464 section 2.3.3, "" when unknown), the
// enhanced status code ("5.1.1", "" when unknown) and the diagnostic text
// (the remote server's reply or the MTA's explanation).
func Classify(action, status, diagnostic string) (Bounce, Reason) {
	action = strings.ToLower(action)
	switch action {
	case "delivered", "relayed", "expanded":
		return NoBounce, ReasonDelivered
	}
	if status == "" {
		status = statusCode(diagnostic)
	}
	if strings.HasPrefix(status, "2.") && action != "failed" && action != "delayed" {
		return NoBounce, ReasonDelivered
	}
	digit := byte(0)
	if status != "" {
		digit = status[0]
	}
	reason, fixed := matchReason(status, diagnostic)
	// Delayed is soft whatever the reason: the MTA is still trying.
	if action == "delayed" {
		if fixed == SoftBounce || fixed == BlockBounce && reason != ReasonOther {
			return SoftBounce, reason
		}
		if reason == ReasonOther || reason == ReasonNone {
			reason = ReasonDelayed
		}
		return SoftBounce, reason
	}
	if fixed != NoBounce {
		return fixed, reason
	}
	switch {
	case digit == '5':
		if reason == ReasonNetwork {
			reason = ReasonOther
		}
		return HardBounce, reason
	case digit == '4':
		return SoftBounce, reason
	case action == "failed":
		// Gave up without a code: permanent, as the MTA says.
		return HardBounce, reason
	}
	return SoftBounce, reason
}

// StatusCode returns the first status code in s: an enhanced code (RFC
// 3463), or a basic reply code mapped to its class ("550" -> "5.0.0");
// "" if none.
func StatusCode(s string) string { return statusCode(s) }

// matchReason finds the first rule that names the diagnostic, else the
// first that lists the status code; ReasonOther when none does.
func matchReason(status, diagnostic string) (Reason, Bounce) {
	d := strings.ToLower(diagnostic)
	if len(d) > 2048 {
		d = d[:2048]
	}
	var weak *rule
	if d != "" {
	phrases:
		for i := range reasonRules {
			r := &reasonRules[i]
			for _, p := range r.phrases {
				if strings.Contains(d, p) {
					if !r.weak {
						return r.reason, r.fixed
					}
					weak = r
					break phrases
				}
			}
		}
	}
	if reason, fixed, ok := codeReason(status); ok && (weak == nil || !codeIsWeak(reason)) {
		return reason, fixed
	}
	if weak != nil {
		return weak.reason, weak.fixed
	}
	return ReasonOther, NoBounce
}

func codeIsWeak(r Reason) bool { return r == ReasonNetwork || r == ReasonPolicyBlock }

// codeReason is the rule listing the status code's subject.detail.
func codeReason(status string) (Reason, Bounce, bool) {
	if len(status) > 2 {
		sub := status[2:] // subject.detail
		for _, r := range reasonRules {
			for _, c := range r.codes {
				if sub == c {
					return r.reason, r.fixed, true
				}
			}
		}
	}
	return "", NoBounce, false
}
