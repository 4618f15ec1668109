package dnsentinel

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dnsentinel/coredns-plugin/contract"
)

// clientIP must give exactly what request.Request.IP gives, only cheaper.
func TestClientIPMatchesRequestIP(t *testing.T) {
	writers := []dns.ResponseWriter{
		&test.ResponseWriter{},
		&test.ResponseWriter{RemoteIP: "2001:db8::7"},
		&test.ResponseWriter{RemoteIP: "fe80::1", Zone: "eth0"},
		&test.ResponseWriter{RemoteIP: "192.0.2.9", TCP: true},
		&test.ResponseWriter{RemoteIP: "::ffff:192.0.2.10"},
		&fixedWriter{addr: &net.UDPAddr{Port: 53}},                       // no IP
		&fixedWriter{addr: &net.UnixAddr{Name: "/run/dns", Net: "unix"}}, // neither UDP nor TCP
	}
	for _, w := range writers {
		state := request.Request{W: w}
		want := (&request.Request{W: w}).IP()
		if got := clientIP(w, &state); got != want {
			t.Errorf("%v: clientIP %q, request.IP %q", w.RemoteAddr(), got, want)
		}
	}
}

// The name cache is keyed by the raw question name; every spelling of a name must still be
// decided and reported under its normalized form.
func TestServeDNSMixedCaseNames(t *testing.T) {
	h, em := testHandler(t, Config{Action: contract.ActionNXDomain, ServerID: "test-1"}, testStore())
	for _, q := range []string{"BAD.example.com", "bad.EXAMPLE.com", "bad.example.com"} {
		w := &test.ResponseWriter{}
		rec := &rcodeRecorder{ResponseWriter: w}
		if _, err := h.ServeDNS(context.Background(), rec, query(q, dns.TypeA, false)); err != nil {
			t.Fatal(err)
		}
		if rec.rcode != dns.RcodeNameError {
			t.Errorf("%s: rcode %d, want NXDOMAIN", q, rec.rcode)
		}
	}
	if len(em.events) != 3 {
		t.Fatalf("%d events, want 3", len(em.events))
	}
	for _, ev := range em.events {
		if ev.Name != "bad.example.com" || ev.Decision != contract.DecisionMalicious {
			t.Errorf("event %+v", ev)
		}
	}
	if p := h.names.get("BAD.example.com."); p.qname != "bad.example.com." {
		t.Errorf("qname %q, want CoreDNS's lower-case form", p.qname)
	}
}

// Pooled per-query state must not leak from one query into the next.
func TestServeDNSPooledStateIsFresh(t *testing.T) {
	h, em := testHandler(t, Config{Action: contract.ActionNXDomain, ServerID: "test-1"}, testStore())
	_, _ = h.ServeDNS(context.Background(), &test.ResponseWriter{}, query("bad.example.com", dns.TypeA, false))
	h.Next = test.NextHandler(dns.RcodeServerFailure, errors.New("down")) // writes nothing
	_, _ = h.ServeDNS(context.Background(), &test.ResponseWriter{}, query("new.example.com", dns.TypeA, false))
	ev := em.events[1]
	if ev.Rcode != "SERVFAIL" || ev.Action != contract.ActionPass || ev.Decision != contract.DecisionUnknown {
		t.Errorf("second event %+v", ev)
	}
}

// A verdict parsed when fetched is used as is, a bad one included.
func TestVerdictOfUsesParsed(t *testing.T) {
	bad := errors.New("bad")
	res := lookupResult{Verdict: "ignored", parsed: &parsedVerdict{err: bad}}
	if _, err := res.verdictOf(); !errors.Is(err, bad) {
		t.Errorf("err %v, want the stored parse error", err)
	}
	res = lookupResult{Verdict: malicious}
	if v, err := res.verdictOf(); err != nil || v.Label != contract.DecisionMalicious {
		t.Errorf("parse on use: %+v %v", v, err)
	}
}

// Label values outside the indexed sets still count.
func TestQueryCounterUnindexedLabels(t *testing.T) {
	var c metricsCache
	sm := c.get("test-unindexed")
	if c.get("test-unindexed") != sm {
		t.Fatal("metrics not cached")
	}
	sm.query("odd", contract.ActionPass)
	sm.query(contract.DecisionBenign, contract.ActionPass)
	sm.query(contract.DecisionBenign, contract.ActionPass)
	if got := testutil.ToFloat64(queriesTotal.WithLabelValues("test-unindexed", "odd", contract.ActionPass)); got != 1 {
		t.Errorf("odd: %v, want 1", got)
	}
	if got := testutil.ToFloat64(queriesTotal.WithLabelValues("test-unindexed", contract.DecisionBenign, contract.ActionPass)); got != 2 {
		t.Errorf("benign: %v, want 2", got)
	}
}
