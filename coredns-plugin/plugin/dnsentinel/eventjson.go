package dnsentinel

import (
	"strconv"
	"unicode/utf8"
)

// appendEvent encodes ev as the SPEC §2.2 JSON object without reflection: the hot path
// builds one per query. Field order and omission follow the `json` tags of event, and the
// output equals encoding/json's (see TestAppendEventMatchesEncodingJSON).
func appendEvent(b []byte, ev *event) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(ev.V), 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ev.TS, 10)
	b = appendField(b, "name", ev.Name, false)
	b = appendField(b, "qtype", ev.QType, false)
	b = appendField(b, "client", ev.Client, false)
	b = appendField(b, "source", ev.Source, false)
	b = appendField(b, "server", ev.Server, true)
	b = appendField(b, "action", ev.Action, true)
	b = appendField(b, "decision", ev.Decision, true)
	b = appendField(b, "rcode", ev.Rcode, true)
	b = append(b, `,"latency_us":`...)
	b = strconv.AppendInt(b, ev.LatencyUS, 10)
	b = appendField(b, "proto", ev.Proto, true)
	return append(b, '}')
}

func appendField(b []byte, key, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendJSONString(b, value)
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does (HTML-safe escapes, U+FFFD for invalid
// UTF-8, \u2028 and \u2029 escaped).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
