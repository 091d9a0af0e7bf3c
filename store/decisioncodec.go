package store

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"
	bolt "go.etcd.io/bbolt"
)

// How an envelope's decision records are stored in bbolt (bucketDecisions).
//
// The records are JSON the engine writes (a list per envelope), and about
// half of each is the same words every time: the field names, and the
// explanation's sentences around its numbers ("is released at", "outweighs
// the cost of one more mail"...). A campaign's decide writes one record per
// recipient in the one commit loop, so those bytes were most of what it
// wrote (1.2 KB of about 1.8 KB a recipient once profiles were sparse).
//
// A list is therefore stored as one of:
//
//   - the JSON array itself ('[' first), as every release before this one
//     wrote it and as this one writes a list that would not shrink;
//   - decisionsDict1 (0x01), then the list as an S2 block compressed with
//     the dictionary decisionDict1 below (github.com/klauspost/compress/s2,
//     already the bodies' codec).
//
// The dictionary is part of the stored form: a list written with it can
// only be read with it, so it never changes (TestDecisionDictIsFrozen); a
// better one would be a new first byte. A record unlike it (another
// engine's words) is still stored and read exactly, just compressed less.
// Readers get JSON either way (decisionsJSON); nothing outside this file
// sees the stored form. PostgreSQL keeps its records as JSON.
const decisionsDict1 = 0x01

// maxDecisionsJSON bounds what a stored list may decode to, so that a
// damaged length cannot make a reader allocate more.
const maxDecisionsJSON = 64 << 20

// decisionDict1Text is a deferral, a suppression and a release in the
// form the engine (governor/engine/recordjson.go, scoring/explain.go)
// wrote them when the dictionary was made, with the phrases of every
// reason. Its numbers, times and words are made up, none taken from a
// benchmark's records, so that a benchmark measures what a dictionary of
// the engine's vocabulary saves, not one of its own mail.
const decisionDict1Text = `[{"decided_at":"2026-04-16T07:45:12Z","mode":"shadow","action":"defer","would":"suppress",` +
	`"at":"2026-04-16T18:30:00+02:00","reasons":["quiet-hours","best-time","cap-day","cap-week","min-gap","outcompeted",` +
	`"low-value","near-duplicate","repeat-campaign","superseded","stale","expired","send-window","not-before",` +
	`"no-slot-before-deadline","fairness-floor","exploration","holdout"],"explanation":"“Order news” waits until ` +
	`Thu 16 Apr 18:30 CEST (recipient's time) because it is quiet hours now, and this recipient engages more at that ` +
	`time (1.38x the average hour), the daily cap is reached, the weekly cap is reached, the last mail was too recent ` +
	`(minimum gap), better messages took the slots the budget allows, it is nearly the same text as a mail sent lately ` +
	`(3 of 64 fingerprint bits differ), campaign “spring” already reached this recipient lately, a newer version of ` +
	`campaign “spring” replaces it, it has waited longer than messages are held, it expired before it could be sent, ` +
	`it is outside the send window now, the sender asked for it not to go out earlier, no allowed time is left before ` +
	`its deadline. Of 4 recent mails with “garden” this recipient opened 2 and clicked 1.` +
	`\nvalue 0.0123 = affinity 0.0456 (population 0.0381) × priority 0.50 × novelty 0.88 × freshness 0.97 × time 1.38 ` +
	`× delay 0.95; cost 0.0425 at volume 2.31 (comfortable 2.50) × sensitivity 1.10 × customer value 1.20; ignored ` +
	`streak 2; exploration draw 0.4321\ncampaign spring: 3 clicks, 12 opens, 1 stops of 40 releases read (clicks per ` +
	`release 7.5% against the sender's 3.1%): ×1.12\nreasons: quiet-hours,best-time"},` +
	`{"decided_at":"2026-04-17T06:02:41Z","mode":"enforce","action":"suppress","reasons":["unsubscribed","complained",` +
	`"hard-bounced","away"],"numbers":{"Affinity":0.0312,"PopulationRate":0.0415,"Priority":0.5,"Novelty":0.88,` +
	`"Freshness":0.94,"TimeLift":1.31,"Delay":0.97,"Value":0.0123,"Volume":2.2,"Sensitivity":1.1,"Comfort":2.5,` +
	`"CustomerValue":1.2,"Cost":0.0087,"NearestBits":12,"IgnoredStreak":1,"SinceLastRelease":172800000000000,` +
	`"Draw":0.1234,"Content":{"Term":"garden","Sends":4,"Opens":2,"Clicks":1},"Campaign":1.05,"CampaignNote":{"Read":40,` +
	`"Opens":12,"Clicks":3,"Stops":1,"Rate":0.075,"SenderRate":0.031,"Exploring":true}},"explanation":"This message is ` +
	`not sent because the recipient unsubscribed, so marketing mail stops for good, the recipient marked mail as spam, ` +
	`so marketing mail stops for good, the address bounced permanently, the recipient is away, its expected engagement ` +
	`(0.4%) is below the cost of one more mail (1.2%) at any time in reach, the model rates it low, but a small share ` +
	`of such mail goes out anyway so the model keeps learning what this recipient likes, the model rates this recipient ` +
	`low, but nobody goes without mail for long (their last one was 9 days ago), and this is their best message, the ` +
	`recipient is in the holdout group, which gets everything the caps allow so that the model's lift can be ` +
	`measured.\nreasons: unsubscribed"},` +
	`{"decided_at":"2026-04-16T07:45:12Z","mode":"enforce","action":"release","at":"2026-04-16T18:30:00+02:00",` +
	`"reasons":["worth-it"],"numbers":{"Affinity":1,"PopulationRate":1,"Priority":1,"Novelty":1,"Freshness":1,` +
	`"TimeLift":1,"Delay":1,"Value":1,"Volume":0,"Sensitivity":1,"Comfort":3,"CustomerValue":1,"Cost":0,` +
	`"NearestBits":-1,"IgnoredStreak":0,"SinceLastRelease":-1,"Draw":0,"Campaign":1,"CampaignNote":{"Read":0,` +
	`"Opens":0,"Clicks":0,"Stops":0,"Rate":0,"SenderRate":0,"Exploring":false}},"explanation":"“Spring picks” is ` +
	`released at Thu 16 Apr 18:30 CEST (recipient's time) because its expected engagement (4.2%) outweighs the cost ` +
	`of one more mail (0.9%) for someone who got 1.0 recent mails.\nvalue 0.0420 = affinity 0.0420 (population ` +
	`0.0381) × priority 1.00 × novelty 1.00 × freshness 1.00 × time 1.00 × delay 1.00; cost 0.0090 at volume 1.00 ` +
	`(comfortable 3.00) × sensitivity 1.00 × customer value 1.00; ignored streak 0; exploration draw 0.5000\ncampaign ` +
	`spring: 0 clicks, 0 opens, 0 stops of 0 releases read (clicks per release 3.1% against the sender's 3.1%): ` +
	`×1.00\nreasons: worth-it"}]`

var decisionDict1 = s2.MakeDict([]byte(decisionDict1Text), []byte(`{"decided_at":"`))

// encodeDecisions is the stored form of the JSON list list: compressed
// with the dictionary, or list itself when that is not smaller.
func encodeDecisions(list []byte) []byte {
	if len(list) == 0 {
		return list
	}
	buf := make([]byte, 1+s2.MaxEncodedLen(len(list)))
	buf[0] = decisionsDict1
	n := 1 + len(decisionDict1.Encode(buf[1:], list)) // encodes into buf[1:]
	if n >= len(list) {
		return list
	}
	return buf[:n:n]
}

// decisionsJSON is the JSON list a stored value holds (nil for none). The
// result may be v itself: callers that keep it past the transaction copy it.
func decisionsJSON(v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] == '[' {
		return v, nil
	}
	if v[0] != decisionsDict1 {
		return nil, fmt.Errorf("decision records stored in an unknown form (first byte %#x)", v[0])
	}
	n, err := s2.DecodedLen(v[1:])
	if err != nil {
		return nil, fmt.Errorf("decision records: %w", err)
	}
	if n > maxDecisionsJSON {
		return nil, errors.New("decision records: longer than any list written")
	}
	out, err := decisionDict1.Decode(make([]byte, n), v[1:])
	if err != nil {
		return nil, fmt.Errorf("decision records: %w", err)
	}
	return out, nil
}

// getDecisions returns envelope id's decision records as JSON, a copy the
// caller may keep (nil: none).
func getDecisions(b *bolt.Bucket, id []byte) ([]byte, error) {
	v := b.Get(id)
	if len(v) > 0 && v[0] == '[' {
		return bytes.Clone(v), nil
	}
	js, err := decisionsJSON(v) // decoded into a new buffer
	if err != nil {
		return nil, fmt.Errorf("envelope %s: %w", id, err)
	}
	return js, nil
}
