package contract

import (
	"fmt"
	"strconv"
	"strings"
)

const keyVersion = "v1"

// VerdictKey is `<p>:v1:verdict:<name>` (SPEC §3).
func VerdictKey(prefix, name string) string { return prefix + ":" + keyVersion + ":verdict:" + name }

// VettedKey is the hash of vetted decisions, field = entry name.
func VettedKey(prefix string) string { return prefix + ":" + keyVersion + ":vetted" }

// VettedLogKey is the stream recording every vetted change.
func VettedLogKey(prefix string) string { return prefix + ":" + keyVersion + ":vetted:log" }

// ChangesChannel is the pub/sub channel announcing vetted and verdict changes.
func ChangesChannel(prefix string) string { return prefix + ":" + keyVersion + ":changes" }

// Verdict is a model verdict for one exact name, as stored in its compact form.
type Verdict struct {
	Label string  // malicious, uncertain or benign
	Score float64 // 0..1
	Model string  // model version, never contains '|'
	Time  int64   // unix seconds
}

var labelOfCode = map[string]string{"m": DecisionMalicious, "u": DecisionUncertain, "b": DecisionBenign}

// ParseVerdict decodes `<m|u|b>|<score>|<model>|<unix seconds>`; an error means the value
// is read as unknown and counted as bad_value.
func ParseVerdict(value string) (Verdict, error) {
	parts := strings.Split(value, "|")
	if len(parts) != 4 {
		return Verdict{}, fmt.Errorf("%d fields, expected 4", len(parts))
	}
	label, ok := labelOfCode[parts[0]]
	if !ok {
		return Verdict{}, fmt.Errorf("label code %.8q is not m, u or b", parts[0])
	}
	if !isDecimal(parts[1]) {
		return Verdict{}, fmt.Errorf("score %.20q is not a decimal number", parts[1])
	}
	score, err := strconv.ParseFloat(parts[1], 64)
	if err != nil || score > 1 {
		return Verdict{}, fmt.Errorf("score %.20q is over 1", parts[1])
	}
	if parts[2] == "" {
		return Verdict{}, fmt.Errorf("empty model version")
	}
	secs := parts[3]
	if secs == "" || len(secs) > 12 || strings.Trim(secs, "0123456789") != "" {
		return Verdict{}, fmt.Errorf("time %.20q is not unix seconds", secs)
	}
	t, _ := strconv.ParseInt(secs, 10, 64)
	return Verdict{Label: label, Score: score, Model: parts[2], Time: t}, nil
}

// Format encodes the compact value: score clamped to 0..1 with 4 decimals.
func (v Verdict) Format() string {
	code := "b"
	switch v.Label {
	case DecisionMalicious:
		code = "m"
	case DecisionUncertain:
		code = "u"
	}
	s := min(max(v.Score, 0), 1)
	return code + "|" + strconv.FormatFloat(s, 'f', 4, 64) + "|" + v.Model + "|" + strconv.FormatInt(v.Time, 10)
}

// isDecimal matches [0-9]+(\.[0-9]+)? without a regexp on the hot path.
func isDecimal(s string) bool {
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || strings.Trim(intPart, "0123456789") != "" {
		return false
	}
	return !hasDot || (frac != "" && strings.Trim(frac, "0123456789") == "")
}
