package contract

import "strings"

// Candidates lists the vetted entries that may cover a normalized name, most specific first:
// the name, its wildcard, then each ancestor and its wildcard (SPEC §1.3).
func Candidates(name string) []string {
	labels := strings.Split(name, ".")
	out := make([]string, 0, 2*len(labels)+1)
	if labels[0] == "*" { // a wildcard query name: itself, then as its parent
		out = append(out, name)
		labels = labels[1:]
	}
	rest := strings.Join(labels, ".")
	for {
		for _, e := range [2]string{rest, "*." + rest} {
			if !containsString(out, e) {
				out = append(out, e)
			}
		}
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			return out
		}
		rest = rest[i+1:]
	}
}

// Decide applies the precedence of SPEC §1.3. cands are Candidates(name) and actions the
// vetted action of each candidate ("" when there is no entry); verdictLabel is the label of
// the exact name's model verdict, "" when there is none or it did not parse.
func Decide(cands, actions []string, verdictLabel string) string {
	for i, a := range actions {
		if a == DecisionAllow && (i == 0 || strings.HasPrefix(cands[i], "*.")) {
			return DecisionAllow
		}
	}
	for _, a := range actions {
		if a == DecisionBlock || a == DecisionHoneypot {
			return a
		}
	}
	if verdictLabel != "" {
		return verdictLabel
	}
	return DecisionUnknown
}

// Blocking reports whether a decision is answered by the plugin instead of the next plugin.
func Blocking(decision string) bool {
	return decision == DecisionBlock || decision == DecisionHoneypot || decision == DecisionMalicious
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
