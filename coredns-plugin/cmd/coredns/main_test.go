package main

import (
	"slices"
	"testing"

	"github.com/coredns/coredns/core/dnsserver"
)

func TestInsertBefore(t *testing.T) {
	tests := []struct {
		dirs []string
		want []string
	}{
		{[]string{"log", "cache", "forward"}, []string{"log", "dnsentinel", "cache", "forward"}},
		{[]string{"log", "forward"}, []string{"log", "forward", "dnsentinel"}},
		{[]string{"dnsentinel", "cache"}, []string{"dnsentinel", "cache"}},
	}
	for _, tc := range tests {
		if got := insertBefore(slices.Clone(tc.dirs), "cache", "dnsentinel"); !slices.Equal(got, tc.want) {
			t.Errorf("insertBefore(%v) = %v; want %v", tc.dirs, got, tc.want)
		}
	}
}

// TestDirectiveOrder: dnsentinel runs after log/metrics (so its answers are logged and
// counted) and before cache and forward.
func TestDirectiveOrder(t *testing.T) {
	at := func(name string) int { return slices.Index(dnsserver.Directives, name) }
	d := at("dnsentinel")
	if d < 0 || d < at("log") || d < at("prometheus") || d > at("cache") || d > at("forward") {
		t.Errorf("directive order %v", dnsserver.Directives)
	}
}
