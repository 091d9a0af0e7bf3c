package scoring

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Campaign quality learned in flight (issue 18). Kadenz holds a campaign's
// mail for many recipients at once, and the first releases' engagement
// says how good the campaign is for the rest: a sender's opinion in
// X-Kadenz-Priority is only a claim.
//
// The engine counts, per campaign and per sender, in the store (named
// counters, written in the same transactions as the decisions and the
// feedback): releases, the sum of their release times, and the first open,
// first click and stop (unsubscribe or complaint) each release earned.
// Scoring gets them with the held message (Held.Campaign) and turns them
// into one factor on the message's value:
//
//   - A release counts as read once it has had time to be: the releases
//     are discounted by 1-exp(-age/CampaignReadTime), age taken from their
//     mean release time, so that a campaign released an hour ago is not
//     judged on mail nobody has looked at yet.
//   - The sender's open rate per read release, click rate per open and
//     stop rate per read release are Beta posteriors shrunk toward the
//     population's; the campaign's are shrunk toward the sender's, with
//     CampaignPrior pseudo-releases (a third of that in pseudo-opens for
//     the click rate).
//   - The factor is the campaign's expected clicks per release (open rate
//     times click rate per open) over the sender's, times the
//     square root of the sender's stop rate over the campaign's when that
//     is higher (stops only count against; their prior is worth three
//     expected stops), to the power CampaignWeight, within
//     1/CampaignMaxLift and CampaignMaxLift.
//   - Exploration: until CampaignExplore releases have been read, the
//     factor is never below 1, so a campaign is not judged down on a
//     handful of readers; it can rise at once.
//
// Everything is a pure function of the counts, the priors and now, so the
// same counts give the same factor (deterministic replay), and the counts
// themselves are durable. What it does not do: compare campaigns of
// different senders with each other (each is measured against its own
// sender), or learn which recipients a campaign suits (that is relevance).

// CampaignCounts are what a campaign's (or a sender's) releases earned
// across recipients.
type CampaignCounts struct {
	// Released counts releases; ReleasedAt is their mean release time.
	Released   float64
	ReleasedAt time.Time
	// Opens, Clicks and Stops count releases opened, clicked, and
	// recipients who unsubscribed or complained about one.
	Opens, Clicks, Stops float64
}

// CampaignEvidence is a held message's campaign's counts and its sender's.
type CampaignEvidence struct {
	// Key names the campaign in explanations (QualityKey).
	Key      string
	Campaign CampaignCounts
	Sender   CampaignCounts
}

// CampaignNote explains the campaign factor.
type CampaignNote struct {
	// Read is the campaign's releases counted as read; Opens, Clicks and
	// Stops what they earned.
	Read, Opens, Clicks, Stops float64
	// Rate and SenderRate are the campaign's and the sender's expected
	// clicks per release.
	Rate, SenderRate float64
	// Exploring is set while the campaign has fewer than CampaignExplore
	// read releases and the factor was kept at 1 or above.
	Exploring bool
}

// QualityKey is the key a message's campaign quality is counted under: its
// campaign ("c:" and the lower-cased ID) when it names one that is not
// only a list's List-Id, else a hash of its subject ("s:...": the copies
// of one send share their subject), else "" (not counted).
func QualityKey(f *Features) string {
	if f == nil {
		return ""
	}
	if f.Campaign != "" && !f.CampaignFromList {
		return "c:" + strings.ToLower(f.Campaign)
	}
	if s := strings.ToLower(strings.TrimSpace(f.Subject)); s != "" {
		return fmt.Sprintf("s:%016x", mix64(fnvString(fnvOffset64, s)))
	}
	return ""
}

// stopPriorStops is the prior behind a stop rate, in expected stops: stops
// are rare (a few per thousand releases), so a campaign needs hundreds of
// releases before its own count says more than its sender's.
const stopPriorStops = 3

// read is the number of c's releases that have had time to be read by now.
func (c *CampaignCounts) read(now time.Time, readTime time.Duration) float64 {
	if c.Released <= 0 || c.ReleasedAt.IsZero() || !now.After(c.ReleasedAt) || readTime <= 0 {
		return 0
	}
	age := float64(now.Sub(c.ReleasedAt)) / float64(readTime)
	return c.Released * (1 - math.Exp(-age))
}

// campaignFactor computes the campaign factor for ev at now.
func campaignFactor(ev *CampaignEvidence, pop *Population, pol *Policy, now time.Time) (float64, CampaignNote) {
	var note CampaignNote
	if ev == nil || pol.CampaignWeight <= 0 {
		return 1, note
	}
	// The sender, shrunk toward the population.
	s := &ev.Sender
	sRead := s.read(now, pol.CampaignReadTime)
	ctor0 := 0.0
	if pop.OpenRate > 0 {
		ctor0 = clamp(pop.ClickRate/pop.OpenRate, 0, 1)
	}
	k := pol.CampaignPrior
	sOpen := betaMean(s.Opens, max(sRead, s.Opens), pop.OpenRate, k)
	sCTOR := betaMean(s.Clicks, s.Opens, ctor0, k/3)
	sStop := betaMean(s.Stops, max(sRead, s.Stops), pop.UnsubscribeRate, stopPriorStops/max(pop.UnsubscribeRate, 1e-4))
	// The campaign, shrunk toward its sender.
	c := &ev.Campaign
	cRead := c.read(now, pol.CampaignReadTime)
	cOpen := betaMean(c.Opens, max(cRead, c.Opens), sOpen, k)
	cCTOR := betaMean(c.Clicks, c.Opens, sCTOR, k/3)
	cStop := betaMean(c.Stops, max(cRead, c.Stops), sStop, stopPriorStops/max(sStop, 1e-4))

	note = CampaignNote{Read: cRead, Opens: c.Opens, Clicks: c.Clicks, Stops: c.Stops}
	// Clicks per release, not the weighted engagement: how often a
	// campaign's mail is opened says more about when it came, to whom and
	// after how much other mail than about the campaign, and opens would
	// outweigh clicks three to one in the engagement score. A campaign's
	// quality is in whether the readers who opened it clicked (in the
	// structured simulator, the factor's correlation with the hidden
	// quality was 0.00-0.11 on engagement).
	note.Rate = cOpen * cCTOR
	note.SenderRate = sOpen * sCTOR
	if note.SenderRate <= 0 || cStop <= 0 {
		return 1, note
	}
	// Stops only count against: none is what most campaigns earn.
	f := note.Rate / note.SenderRate * math.Sqrt(min(1, sStop/cStop))
	f = math.Pow(f, pol.CampaignWeight)
	maxLift := max(pol.CampaignMaxLift, 1)
	f = clamp(f, 1/maxLift, maxLift)
	if cRead < pol.CampaignExplore && f < 1 {
		f, note.Exploring = 1, true
	}
	return f, note
}

// applyCampaign multiplies the relevance's value by the campaign factor.
func (r *Relevance) applyCampaign(ev *CampaignEvidence, pop *Population, pol *Policy, now time.Time) {
	if ev == nil {
		r.Campaign = 1 // nothing to learn from (and nothing to allocate)
		return
	}
	f, note := campaignFactor(ev, pop, pol, now)
	r.Campaign, r.CampaignNote = f, &note
	r.Value *= f
}

// CampaignFactor is the campaign factor a message with this evidence gets
// at now (see the comment at the top of campaign.go); 1 for nil evidence.
func CampaignFactor(ev *CampaignEvidence, pop *Population, pol Policy, now time.Time) (float64, CampaignNote) {
	pol = pol.withDefaults()
	return campaignFactor(ev, pop, &pol, now)
}

// Engagement is what one piece of feedback newly counted for the release
// it is about, for the campaign counts: the release's quality key and
// sender, and whether this was its first open or click, or the
// recipient's stop.
type Engagement struct {
	Quality, Sender   string
	Open, Click, Stop bool
	// Topics and Terms are the release's, for the population's topic and
	// term counts.
	Topics []string
	Terms  TermBits
	// OpenedAfter is the release's open delay when this was its first
	// open or click, for the list's delay law (FitOpenDelays).
	OpenedAfter time.Duration
}

// Counted reports whether the event counted anything new.
func (e *Engagement) Counted() bool { return e.Open || e.Click || e.Stop }

// RecordEventCounted is RecordEvent that also reports what the event newly
// counted for the campaign and population counts (nothing when the
// event repeats one already counted, or when the release is unknown,
// except a first stop that names no message: the list's stop rate counts
// it).
func (p *Profile) RecordEventCounted(ev Event, loc *time.Location, m Memory) Engagement {
	var rel *Release
	if ev.MessageID != "" {
		for i := len(p.History) - 1; i >= 0; i-- {
			if p.History[i].MessageID == ev.MessageID {
				rel = &p.History[i]
				break
			}
		}
	}
	var before Release
	if rel != nil {
		before = *rel
	}
	stopped := p.HardStopped()
	p.RecordEvent(ev, loc, m)
	stop := !stopped && (ev.Kind == EventUnsubscribe || ev.Kind == EventComplaint) && p.HardStopped()
	if rel == nil {
		// A stop that names no message still counts toward the list's stop
		// rate; one that names a message not released to them (transactional
		// mail, or in shadow mode mail enforce would not have sent) does not.
		return Engagement{Stop: stop && ev.MessageID == ""}
	}
	e := Engagement{Quality: rel.Quality, Sender: rel.Sender, Topics: rel.Topics, Terms: rel.Terms}
	e.Open = rel.Opened && !before.Opened
	e.Click = rel.Clicked && !before.Clicked
	e.Stop = stop
	if before.OpenedAfter == 0 {
		e.OpenedAfter = rel.OpenedAfter
	}
	if !e.Counted() {
		return Engagement{}
	}
	return e
}

// explainLearned adds what the content and campaign learners said, in
// words: "content: opened 3 and clicked 1 of 5 mails with "boots"";
// "campaign: 2 clicks, 40 opens of 180 releases read (clicks per release 1.1%
// against the sender's 0.8%): ×1.30".
func explainLearned(b *strings.Builder, n *Numbers, campaign string) {
	if c := n.Content; c != nil && c.Term != "" {
		fmt.Fprintf(b, "\ncontent: opened %.0f and clicked %.0f of %.0f mails with “%s”", c.Opens, c.Clicks, c.Sends, c.Term)
	}
	cn := n.CampaignNote
	if cn == nil {
		return
	}
	name := campaign
	if name == "" {
		name = "this subject"
	}
	fmt.Fprintf(b, "\ncampaign %s: %.0f clicks, %.0f opens, %.0f stops of %.0f releases read (clicks per release %.1f%% against the sender's %.1f%%): ×%.2f",
		name, cn.Clicks, cn.Opens, cn.Stops, cn.Read, 100*cn.Rate, 100*cn.SenderRate, n.Campaign)
	if cn.Exploring {
		b.WriteString(" (still exploring: not judged down before enough readers)")
	}
}
