package governor

import "kadenz/governor/feedback"

// applyReport acts on what a feedback message says.
// replaced by the events branch
func (r *Relay) applyReport(rep feedback.Report) error { return nil }
