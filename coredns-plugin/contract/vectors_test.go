package contract

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// vectors mirrors verdict_cache/vectors.json, the shared Go/Python conformance table.
type vectors struct {
	Names []struct {
		Note        string  `json:"note"`
		Input       *string `json:"input"`
		InputHex    string  `json:"input_hex"`
		Normalized  string  `json:"normalized"`
		Kind        string  `json:"kind"`
		Registrable *string `json:"registrable"`
		Display     string  `json:"display"`
		Error       string  `json:"error"`
	} `json:"names"`
	Routing []struct {
		Input    *string `json:"input"`
		InputHex string  `json:"input_hex"`
		Key      *string `json:"key"`
		KeyHex   string  `json:"key_hex"`
	} `json:"routing"`
	Partitions []struct {
		Key        string `json:"key"`
		Partitions int    `json:"partitions"`
		Partition  int    `json:"partition"`
	} `json:"partitions"`
	Candidates []struct {
		Name       string   `json:"name"`
		Candidates []string `json:"candidates"`
	} `json:"candidates"`
	Decisions []struct {
		Note     string            `json:"note"`
		Name     string            `json:"name"`
		Vetted   map[string]string `json:"vetted"`
		Verdict  *string           `json:"verdict"`
		Decision string            `json:"decision"`
	} `json:"decisions"`
	VerdictValues []struct {
		Value  string `json:"value"`
		Label  string `json:"label"`
		Score  float64
		Model  string
		Time   int64
		Error  string `json:"error"`
		Format *struct {
			Label string  `json:"label"`
			Score float64 `json:"score"`
			Model string  `json:"model"`
			Time  int64   `json:"time"`
		} `json:"format"`
	} `json:"verdict_values"`
	Keys []struct {
		Kind   string `json:"kind"`
		Prefix string `json:"prefix"`
		Name   string `json:"name"`
		Key    string `json:"key"`
	} `json:"keys"`
	Vocabulary map[string][]string `json:"vocabulary"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	path := filepath.Join("..", "..", "verdict_cache", "vectors.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the shared vectors must be present: %v", err)
	}
	var v vectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func rawInput(t *testing.T, s *string, hx string) string {
	if s != nil {
		return *s
	}
	b, err := hex.DecodeString(hx)
	if err != nil {
		t.Fatalf("bad input_hex %q: %v", hx, err)
	}
	return string(b)
}

func TestVectorNames(t *testing.T) {
	v := loadVectors(t)
	if len(v.Names) == 0 {
		t.Fatal("no name vectors")
	}
	for _, c := range v.Names {
		in := rawInput(t, c.Input, c.InputHex)
		n, err := Normalize(in)
		if c.Error != "" {
			inv, ok := err.(*InvalidName)
			if !ok || inv.Reason != c.Error {
				t.Errorf("%s: Normalize(%q) = %+v, %v; want error %s", c.Note, in, n, err, c.Error)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: Normalize(%q) error %v; want %q", c.Note, in, err, c.Normalized)
			continue
		}
		reg := ""
		if c.Registrable != nil {
			reg = *c.Registrable
		}
		if n.Name != c.Normalized || n.Kind != c.Kind || n.Registrable != reg {
			t.Errorf("%s: Normalize(%q) = %+v; want {%s %s %q}", c.Note, in, n, c.Normalized, c.Kind, reg)
		}
		if again, err := Normalize(n.Name); err != nil || again != n {
			t.Errorf("%s: not idempotent: %q -> %+v, %v", c.Note, n.Name, again, err)
		}
		if d := DisplayName(n.Name); d != c.Display {
			t.Errorf("%s: DisplayName(%q) = %q; want %q", c.Note, n.Name, d, c.Display)
		}
	}
}

func TestVectorRouting(t *testing.T) {
	for _, c := range loadVectors(t).Routing {
		in := rawInput(t, c.Input, c.InputHex)
		want := rawInput(t, c.Key, c.KeyHex)
		if got := string(RoutingKey(in)); got != want {
			t.Errorf("RoutingKey(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestVectorPartitions checks the partitioner the plugin's producer actually uses.
func TestVectorPartitions(t *testing.T) {
	p := kgo.StickyKeyPartitioner(nil).ForTopic("dns.queries")
	for _, c := range loadVectors(t).Partitions {
		got := p.Partition(&kgo.Record{Key: []byte(c.Key)}, c.Partitions)
		if got != c.Partition {
			t.Errorf("partition(%q, %d) = %d; want %d", c.Key, c.Partitions, got, c.Partition)
		}
	}
}

func TestVectorCandidates(t *testing.T) {
	for _, c := range loadVectors(t).Candidates {
		got := Candidates(c.Name)
		if len(got) != len(c.Candidates) {
			t.Errorf("Candidates(%q) = %q; want %q", c.Name, got, c.Candidates)
			continue
		}
		for i := range got {
			if got[i] != c.Candidates[i] {
				t.Errorf("Candidates(%q) = %q; want %q", c.Name, got, c.Candidates)
				break
			}
		}
	}
}

func TestVectorDecisions(t *testing.T) {
	for _, c := range loadVectors(t).Decisions {
		cands := Candidates(c.Name)
		actions := make([]string, len(cands))
		for i, e := range cands {
			actions[i] = c.Vetted[e]
		}
		label := ""
		if c.Verdict != nil {
			if vd, err := ParseVerdict(*c.Verdict); err == nil {
				label = vd.Label
			}
		}
		if got := Decide(cands, actions, label); got != c.Decision {
			t.Errorf("%s: Decide(%q, %v, %q) = %s; want %s", c.Note, c.Name, c.Vetted, label, got, c.Decision)
		}
	}
}

func TestVectorVerdictValues(t *testing.T) {
	for _, c := range loadVectors(t).VerdictValues {
		if c.Format != nil {
			got := Verdict{Label: c.Format.Label, Score: c.Format.Score, Model: c.Format.Model, Time: c.Format.Time}.Format()
			if got != c.Value {
				t.Errorf("Format(%+v) = %q; want %q", *c.Format, got, c.Value)
			}
			continue
		}
		vd, err := ParseVerdict(c.Value)
		if c.Error != "" {
			if err == nil {
				t.Errorf("ParseVerdict(%q) = %+v; want %s", c.Value, vd, c.Error)
			}
			continue
		}
		want := Verdict{Label: c.Label, Score: c.Score, Model: c.Model, Time: c.Time}
		if err != nil || vd != want {
			t.Errorf("ParseVerdict(%q) = %+v, %v; want %+v", c.Value, vd, err, want)
		}
	}
}

func TestVectorKeys(t *testing.T) {
	for _, c := range loadVectors(t).Keys {
		var got string
		switch c.Kind {
		case "verdict":
			got = VerdictKey(c.Prefix, c.Name)
		case "vetted":
			got = VettedKey(c.Prefix)
		case "vetted_log":
			got = VettedLogKey(c.Prefix)
		case "changes":
			got = ChangesChannel(c.Prefix)
		default:
			t.Errorf("unknown key kind %q", c.Kind)
			continue
		}
		if got != c.Key {
			t.Errorf("%s key(%q, %q) = %q; want %q", c.Kind, c.Prefix, c.Name, got, c.Key)
		}
	}
}

// TestVectorVocabulary checks every word list of vocabulary.go against verdict_cache/vocabulary.py
// (through vectors.json): same words, same order. The lists the plugin has no use for (labels
// with unscored, flagged labels, scoring reasons, RPZ actions, ...) are not mirrored; the test
// logs them.
func TestVectorVocabulary(t *testing.T) {
	mirrored := map[string][]string{
		"verdict_labels":     VerdictLabels[:],
		"vetted_actions":     VettedActions[:],
		"decisions":          Decisions[:],
		"blocking_decisions": BlockingDecisions[:],
		"metric_decisions":   MetricDecisions[:],
		"actions":            Actions[:],
		"blocking_actions":   BlockingActions[:],
		"sources":            Sources[:],
		"protos":             Protos[:],
	}
	voc := loadVectors(t).Vocabulary
	for name, goWords := range mirrored {
		words, ok := voc[name]
		if !ok {
			t.Errorf("vectors.json has no vocabulary list %s (vocabulary.go mirrors it)", name)
		} else if !slices.Equal(goWords, words) {
			t.Errorf("vocabulary %s: Go has %q; vocabulary.py has %q", name, goWords, words)
		}
	}
	for name, words := range voc {
		if _, ok := mirrored[name]; !ok {
			t.Logf("not used by the plugin: %s %q", name, words)
		}
	}
}

// TestVocabularyInCode: the code that decides by these words agrees with the lists.
func TestVocabularyInCode(t *testing.T) {
	for _, d := range MetricDecisions {
		if Blocking(d) != slices.Contains(BlockingDecisions[:], d) {
			t.Errorf("Blocking(%q) = %v; BlockingDecisions is %q", d, Blocking(d), BlockingDecisions)
		}
	}
	for _, label := range VerdictLabels { // every verdict label has a compact code
		v := Verdict{Label: label, Score: 0.5, Model: "m", Time: 1}
		if got, err := ParseVerdict(v.Format()); err != nil || got != v {
			t.Errorf("verdict label %q does not round-trip: %q -> %+v, %v", label, v.Format(), got, err)
		}
	}
	for _, a := range VettedActions { // a vetted action decides as itself
		if got := Decide([]string{"a.example"}, []string{a}, ""); got != a {
			t.Errorf("Decide with vetted %q = %q", a, got)
		}
	}
}
