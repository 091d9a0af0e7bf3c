package scoring

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Explain renders the decision as a sentence a marketer understands,
// followed by the numbers behind it.
func (d Decision) Explain() string {
	var b strings.Builder
	n := &d.Numbers
	r := d.Reasons
	what := "This message"
	if d.Subject != "" {
		what = "“" + d.Subject + "”" // quoted for a person, not escaped
	}
	at := d.At.Format("Mon 2 Jan 15:04 MST")
	switch d.Action {
	case ActionRelease:
		fmt.Fprintf(&b, "%s is released at %s (recipient's time)", what, at)
	case ActionDefer:
		fmt.Fprintf(&b, "%s waits until %s (recipient's time)", what, at)
	case ActionSuppress:
		fmt.Fprintf(&b, "%s is not sent", what)
	default:
		fmt.Fprintf(&b, "%s has no decision", what)
	}

	var why []string
	add := func(cond bool, s string, args ...any) {
		if cond {
			why = append(why, fmt.Sprintf(s, args...))
		}
	}
	add(r.Has(ReasonUnsubscribed), "the recipient unsubscribed, so marketing mail stops for good")
	add(r.Has(ReasonComplained), "the recipient marked mail as spam, so marketing mail stops for good")
	add(r.Has(ReasonHardBounced), "the address bounced permanently")
	add(r.Has(ReasonAway), "the recipient is away")
	add(r.Has(ReasonExpired), "it expired before it could be sent")
	add(r.Has(ReasonStale), "it has waited longer than messages are held")
	add(r.Has(ReasonSuperseded), "a newer version of campaign “%s” replaces it", d.Campaign)
	add(r.Has(ReasonNotBefore), "the sender asked for it not to go out earlier")
	add(r.Has(ReasonHoldout), "the recipient is in the holdout group, which gets everything the caps allow so that the model's lift can be measured")
	add(r.Has(ReasonWorthIt), "its expected engagement (%s) outweighs the cost of one more mail (%s) for someone who got %.1f recent mails",
		pct(n.Value), pct(n.Cost), n.Volume)
	add(r.Has(ReasonLowValue), "its expected engagement (%s) is below the cost of one more mail (%s) at any time in reach",
		pct(n.Value), pct(n.Cost))
	add(r.Has(ReasonExplore), "the model rates it low, but a small share of such mail goes out anyway so the model keeps learning what this recipient likes")
	add(r.Has(ReasonFloor), "the model rates this recipient low, but nobody goes without mail for long (%s), and this is their best message",
		since(n.SinceLastRelease))
	add(r.Has(ReasonNearDuplicate), "it is nearly the same text as a mail sent lately (%d of 64 fingerprint bits differ)", n.NearestBits)
	add(r.Has(ReasonRepeatCampaign), "campaign “%s” already reached this recipient lately", d.Campaign)
	add(r.Has(ReasonOutcompeted), "better messages took the slots the budget allows")
	add(r.Has(ReasonBestTime), "this recipient engages more at that time (%.2fx the average hour)", n.TimeLift)
	add(r.Has(ReasonQuietHours), "it is quiet hours now")
	add(r.Has(ReasonSendWindow), "it is outside the send window now")
	add(r.Has(ReasonCapDay), "the daily cap is reached")
	add(r.Has(ReasonCapWeek), "the weekly cap is reached")
	add(r.Has(ReasonCapMonth), "the monthly cap is reached")
	add(r.Has(ReasonMinGap), "the last mail was too recent (minimum gap)")
	add(r.Has(ReasonNoSlot), "no allowed time is left before its deadline")
	if len(why) > 0 {
		b.WriteString(" because ")
		for i, w := range why {
			switch {
			case i == 0:
			case i == len(why)-1:
				b.WriteString(", and ")
			default:
				b.WriteString(", ")
			}
			b.WriteString(w)
		}
	}
	b.WriteString(".")
	if c := n.Content; c != nil && c.Term != "" && r&hardStops == 0 {
		// What the content learner saw, in the plain sentence: the
		// evidence a marketer can check ("opened 3 of 5 mails with boots").
		fmt.Fprintf(&b, " Of %.0f recent mails with “%s” this recipient opened %.0f and clicked %.0f.", c.Sends, c.Term, c.Opens, c.Clicks)
	}
	if r&hardStops == 0 {
		writeNumbers(&b, n)
		if n.Draw > 0 {
			fmt.Fprintf(&b, "; exploration draw %.4f", n.Draw)
		}
		explainLearned(&b, n, d.Campaign)
	}
	fmt.Fprintf(&b, "\nreasons: %s", r)
	return b.String()
}

func pct(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }

func since(d time.Duration) string {
	switch {
	case d < 0:
		return "they never had one"
	case d >= 48*time.Hour:
		return fmt.Sprintf("their last one was %.0f days ago", d.Hours()/24)
	default:
		return fmt.Sprintf("their last one was %.0f hours ago", d.Hours())
	}
}

// writeNumbers writes the numbers line of an explanation: what
// fmt.Fprintf(b, "\nvalue %.4f = affinity %.4f (population %.4f) × priority
// %.2f × ... ; ignored streak %d", ...) wrote, without fmt's reflection: a
// line for every envelope decided, at a campaign's scale (issue 16).
// TestNumbersLineIsFprintf holds it to that.
func writeNumbers(b *strings.Builder, n *Numbers) {
	var buf [512]byte
	w := buf[:0]
	parts := [...]struct {
		text string
		v    float64
		prec int
	}{
		{"\nvalue ", n.Value, 4}, {" = affinity ", n.Affinity, 4}, {" (population ", n.PopulationRate, 4},
		{") × priority ", n.Priority, 2}, {" × novelty ", n.Novelty, 2}, {" × freshness ", n.Freshness, 2},
		{" × time ", n.TimeLift, 2}, {" × delay ", n.Delay, 2}, {"; cost ", n.Cost, 4}, {" at volume ", n.Volume, 2},
		{" (comfortable ", n.Comfort, 2}, {") × sensitivity ", n.Sensitivity, 2}, {" × customer value ", n.CustomerValue, 2},
	}
	for _, p := range parts {
		w = append(w, p.text...)
		w = appendFixed(w, p.v, p.prec)
	}
	w = append(w, "; ignored streak "...)
	w = strconv.AppendInt(w, int64(n.IgnoredStreak), 10)
	b.Write(w)
}

// appendFixed appends x as fmt's %.<prec>f writes it: strconv's 'f'
// format, and infinities with their sign as fmt writes them.
func appendFixed(b []byte, x float64, prec int) []byte {
	if math.IsInf(x, 1) {
		return append(b, "+Inf"...)
	}
	return strconv.AppendFloat(b, x, 'f', prec, 64)
}
