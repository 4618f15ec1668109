// Package contract is the Go side of verdict_cache/SPEC.md: query name normalization, the
// registrable domain, Kafka routing keys, Redis key names, compact verdict values and the
// precedence of vetted decisions over model verdicts. The Python package
// dnsentinel.verdict_cache implements the same rules; both pass verdict_cache/vectors.json.
package contract

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// Name kinds (SPEC §1.1).
const (
	KindDomain  = "domain"
	KindReverse = "reverse"
	KindBare    = "bare"
)

// Error reasons of InvalidName (SPEC §1.1).
const (
	ReasonEmpty        = "empty"
	ReasonBadEscape    = "bad_escape"
	ReasonEmptyLabel   = "empty_label"
	ReasonBadIDN       = "bad_idn"
	ReasonBadChar      = "bad_char"
	ReasonLabelTooLong = "label_too_long"
	ReasonNameTooLong  = "name_too_long"
)

const (
	maxLabel = 63
	maxName  = 253
)

// Name is a normalized query name.
type Name struct {
	Name        string // ASCII, lower case, A-labels, no trailing dot
	Kind        string // KindDomain, KindReverse or KindBare
	Registrable string // eTLD+1 with private suffixes; "" when there is none
}

// InvalidName says why a raw name cannot be normalized; Reason is the SPEC reason code.
type InvalidName struct {
	Reason string
	Detail string
}

func (e *InvalidName) Error() string { return e.Reason + ": " + e.Detail }

func invalid(reason, format string, args ...any) *InvalidName {
	return &InvalidName{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Normalize turns a query name in presentation format (as CoreDNS and miekg/dns print it,
// with \DDD and \X escapes) into its normalized form, or returns an *InvalidName.
func Normalize(raw string) (Name, error) {
	if n, ok := fastPath(raw); ok {
		return classify(n), nil
	}
	if raw == "" || raw == "." {
		return Name{}, invalid(ReasonEmpty, "the root name is not a query name")
	}
	labels, err := splitEscaped(raw)
	if err != nil {
		return Name{}, err
	}
	if len(labels) > 1 && len(labels[len(labels)-1]) == 0 {
		labels = labels[:len(labels)-1] // one trailing dot
	}
	for i, l := range labels {
		if len(l) == 0 {
			return Name{}, invalid(ReasonEmptyLabel, "label %d is empty", i+1)
		}
	}
	for _, l := range labels {
		if !isASCII(l) {
			if labels, err = toALabels(labels); err != nil {
				return Name{}, err
			}
			break
		}
	}
	for i, l := range labels {
		lowerASCII(l)
		if !labelOK(l, i) {
			return Name{}, invalid(ReasonBadChar, "label %d %q has a character outside a-z 0-9 - _", i+1, l)
		}
	}
	total := len(labels) - 1
	for i, l := range labels {
		if len(l) > maxLabel {
			return Name{}, invalid(ReasonLabelTooLong, "label %d has %d octets (max %d)", i+1, len(l), maxLabel)
		}
		total += len(l)
	}
	if total > maxName {
		return Name{}, invalid(ReasonNameTooLong, "name has %d octets (max %d)", total, maxName)
	}
	parts := make([]string, len(labels))
	for i, l := range labels {
		parts[i] = string(l)
	}
	return classify(strings.Join(parts, ".")), nil
}

// fastPath handles the common case, a name of allowed ASCII characters without escapes,
// without allocating more than the lower-cased copy.
func fastPath(raw string) (string, bool) {
	s := strings.TrimSuffix(raw, ".")
	if s == "" || len(s) > maxName {
		return "", false
	}
	upper := false
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if i == start || i-start > maxLabel {
				return "", false
			}
			start = i + 1
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case 'A' <= c && c <= 'Z':
			upper = true
		default:
			return "", false // escapes, wildcards, non-ASCII: the full path
		}
	}
	if start == len(s) || len(s)-start > maxLabel {
		return "", false
	}
	if upper {
		s = strings.ToLower(s)
	}
	return s, true
}

// splitEscaped splits presentation format on unescaped dots and decodes \DDD and \X.
func splitEscaped(raw string) ([][]byte, error) {
	labels := [][]byte{}
	cur := []byte{}
	for i := 0; i < len(raw); {
		c := raw[i]
		switch c {
		case '\\':
			if i+1 >= len(raw) {
				return nil, invalid(ReasonBadEscape, "lone backslash at offset %d", i)
			}
			nxt := raw[i+1]
			if '0' <= nxt && nxt <= '9' {
				if i+4 > len(raw) || !isDigit(raw[i+2]) || !isDigit(raw[i+3]) {
					return nil, invalid(ReasonBadEscape, `\DDD needs three digits at offset %d`, i)
				}
				v := int(nxt-'0')*100 + int(raw[i+2]-'0')*10 + int(raw[i+3]-'0')
				if v > 255 {
					return nil, invalid(ReasonBadEscape, `\%s is over 255 at offset %d`, raw[i+1:i+4], i)
				}
				cur = append(cur, byte(v))
				i += 4
			} else {
				cur = append(cur, nxt)
				i += 2
			}
		case '.':
			labels = append(labels, cur)
			cur = []byte{}
			i++
		default:
			cur = append(cur, c)
			i++
		}
	}
	return append(labels, cur), nil
}

// toALabels converts each non-ASCII label with UTS 46 non-transitional processing (the idna
// Lookup profile). Labels are converted one by one so that ASCII labels keep the SPEC's own
// rules (underscores and wildcards, which IDNA would reject).
func toALabels(labels [][]byte) ([][]byte, error) {
	out := make([][]byte, 0, len(labels))
	for i, l := range labels {
		if isASCII(l) {
			out = append(out, l)
			continue
		}
		if !utf8.Valid(l) {
			return nil, invalid(ReasonBadIDN, "label %d %q is not valid UTF-8", i+1, l)
		}
		if strings.ContainsRune(string(l), '.') {
			return nil, invalid(ReasonBadChar, "label %d %q contains an escaped dot", i+1, l)
		}
		a, err := idna.Lookup.ToASCII(string(l))
		if err != nil {
			return nil, invalid(ReasonBadIDN, "label %d %q: %v", i+1, l, err)
		}
		for _, part := range strings.Split(a, ".") { // a mapping may yield a full stop
			if part == "" {
				return nil, invalid(ReasonBadIDN, "label %d %q maps to an empty label", i+1, l)
			}
			out = append(out, []byte(part))
		}
	}
	return out, nil
}

func labelOK(l []byte, index int) bool {
	if len(l) == 1 && l[0] == '*' {
		return index == 0
	}
	for _, c := range l {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func classify(n string) Name {
	if n == "in-addr.arpa" || n == "ip6.arpa" || strings.HasSuffix(n, ".in-addr.arpa") || strings.HasSuffix(n, ".ip6.arpa") {
		return Name{Name: n, Kind: KindReverse}
	}
	if !strings.Contains(n, ".") {
		return Name{Name: n, Kind: KindBare}
	}
	return Name{Name: n, Kind: KindDomain, Registrable: RegistrableDomain(n)}
}

// RegistrableDomain is the eTLD+1 of a normalized multi-label name (SPEC §1.2), private
// suffixes included; "" when the name is itself a public suffix.
func RegistrableDomain(n string) string {
	r, err := publicsuffix.EffectiveTLDPlusOne(n)
	if err != nil {
		return ""
	}
	return r
}

// RoutingKey is the Kafka message key of a query name (SPEC §2.1): the registrable domain
// when there is one, else the normalized name, else the raw bytes.
func RoutingKey(raw string) []byte {
	n, err := Normalize(raw)
	if err != nil {
		return []byte(raw)
	}
	return n.RoutingKey()
}

// RoutingKey is the Kafka message key of an already normalized name.
func (n Name) RoutingKey() []byte {
	if n.Registrable != "" {
		return []byte(n.Registrable)
	}
	return []byte(n.Name)
}

// DisplayName is the Unicode form of a normalized name: xn-- labels decoded where valid.
func DisplayName(n string) string {
	if !strings.Contains(n, "xn--") {
		return n
	}
	labels := strings.Split(n, ".")
	for i, l := range labels {
		if strings.HasPrefix(l, "xn--") {
			if u, err := idna.Lookup.ToUnicode(l); err == nil {
				labels[i] = u
			}
		}
	}
	return strings.Join(labels, ".")
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func lowerASCII(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
}
