package feedback

import "kadenz/scoring"

// What shadow mode's profile learns from feedback (issue 18, point 4).
//
// In shadow mode the profile is the one enforce mode would have built
// (governor/engine/shadow.go): its history holds only the mail enforce
// would have released. But everything was sent, so engagement arrives on
// mail enforce would not have sent, or not yet:
//
//   - on mail in the history (enforce would have released it too): learned
//     as in enforce mode;
//   - on mail enforce would still hold (a would-defer not decided again
//     yet, kept as a copy in the profile): noted on the copy, and learned
//     only if the copy is released, as if it came that long after the
//     release; a copy enforce suppresses in the end teaches nothing;
//   - on mail enforce would have suppressed (or put in review, or mail
//     too old to be in the history): not learned. Enforce would never
//     have seen it; were it learned, a click on a mail enforce would have
//     held back would make shadow's reader look keener than enforce's,
//     and its forecast drift toward sending more, for reasons enforce
//     would not have had (and opens without their sends would inflate the
//     open rate).
//
// Unsubscribes, complaints, bounces and away notices are facts about the
// person, not lessons from a message: they apply whatever mail caused
// them, as they do in enforce mode (the suppression list, too). Events
// that name no message are applied as they come.

// shadowLearns reports whether the profile learns ev in shadow mode; when
// it does not, it notes ev on the copy it names, if there is one.
func shadowLearns(p *scoring.Profile, ev scoring.Event) bool {
	switch ev.Kind {
	case scoring.EventOpen, scoring.EventClick, scoring.EventReply:
	default:
		return true
	}
	if ev.MessageID == "" || p.InHistory(ev.MessageID) {
		return true
	}
	p.NoteShadowEngagement(ev)
	return false
}
