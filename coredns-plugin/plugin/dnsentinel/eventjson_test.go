package dnsentinel

import (
	"encoding/json"
	"testing"
)

func TestAppendEventMatchesEncodingJSON(t *testing.T) {
	strs := []string{"", "example.com", `a\ b.com`, `q"uote`, "tab\there", "nl\n\r\b\f", "\x00\x01\x1f\x7f",
		"<script>&", "b\xffad", "ü-unicode-例", "\u2028\u2029", "\xe2\x80"}
	events := []event{
		{V: 1, TS: 1795392000000, Name: "a.example.com", QType: "A", Client: "192.0.2.1", Source: "live"},
		{V: 1, TS: 1, Name: "x", QType: "TYPE65534", Client: "", Source: "live", Server: "s", Action: "pass",
			Decision: "unknown", Rcode: "NOERROR", LatencyUS: 12, Proto: "udp"},
	}
	for _, s := range strs {
		events = append(events, event{V: 1, TS: 5, Name: s, QType: s, Client: s, Source: s, Server: s,
			Action: s, Decision: s, Rcode: s, LatencyUS: -1, Proto: s})
	}
	for _, ev := range events {
		want, err := json.Marshal(&ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEvent(nil, &ev); string(got) != string(want) {
			t.Errorf("appendEvent(%+v)\n got %s\nwant %s", ev, got, want)
		}
	}
}
