package feedback
import ("testing";"os")
func TestPrintOutcome(t *testing.T) {
	raw,_ := os.ReadFile(os.Getenv("F"))
	r, err := Parse(raw)
	t.Logf("%v kind=%s format=%s env=%s mid=%s", err, r.Kind, r.Format, r.EnvelopeID, r.MessageID)
	for _, o := range r.Outcomes() { t.Logf("%+v", o) }
}
