package dnsentinel

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/pkg/fall"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/dnsentinel/coredns-plugin/contract"
)

// fakeStore answers from maps: verdicts by exact name, vetted actions by entry.
type fakeStore struct {
	verdicts map[string]string
	vetted   map[string]string
	err      error
}

func (f *fakeStore) lookup(ctx context.Context, p *parsed) (lookupResult, error) {
	name, cands := p.name.Name, p.cands
	if f.err != nil {
		return lookupResult{}, f.err
	}
	res := lookupResult{Verdict: f.verdicts[name], Actions: make([]string, len(cands))}
	for i, c := range cands {
		res.Actions[i] = f.vetted[c]
	}
	return res, nil
}
func (f *fakeStore) connected() bool { return f.err == nil }
func (f *fakeStore) close()          {}

type fakeEmitter struct {
	mu     sync.Mutex
	keys   []string
	events []event
}

func (f *fakeEmitter) emit(key []byte, ev *event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = append(f.keys, string(key))
	f.events = append(f.events, *ev)
}
func (f *fakeEmitter) buffered() int64 { return 0 }
func (f *fakeEmitter) close()          {}

func testHandler(t *testing.T, cfg Config, st store) (*Handler, *fakeEmitter) {
	t.Helper()
	if cfg.Zones == nil {
		cfg.Zones = []string{"."}
	}
	em := &fakeEmitter{}
	h := newHandler(cfg)
	h.newStore = func(Config) store { return st }
	h.newEmitter = func(Config) (emitter, error) { return em, nil }
	h.Next = test.NextHandler(dns.RcodeSuccess, nil)
	if err := h.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.stop() })
	return h, em
}

const malicious = "m|0.9981|charcnn-1|1795392000"

func testStore() *fakeStore {
	return &fakeStore{
		verdicts: map[string]string{
			"bad.example.com":    malicious,
			"good.example.com":   "b|0.0100|charcnn-1|1795392000",
			"maybe.example.com":  "u|0.5000|charcnn-1|1795392000",
			"broken.example.com": "garbage",
			"allowed.example":    malicious,
		},
		vetted: map[string]string{
			"evil.org":        contract.DecisionBlock,
			"trap.net":        contract.DecisionHoneypot,
			"allowed.example": contract.DecisionAllow,
		},
	}
}

func query(name string, qtype uint16, edns bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	return m
}

// actionCase is a query of TestServeDNSActions and what the plugin must do with it.
type actionCase struct {
	name     string
	cfg      Config
	qname    string
	qtype    uint16
	rcode    int
	answer   string // first answer RR's data, "" = no answer
	soa      bool   // SOA in authority
	ede      uint16 // 0 = no EDE expected
	action   string
	decision string
	passed   bool // answered by the next plugin
}

func TestServeDNSActions(t *testing.T) {
	v4, v6 := []net.IP{net.ParseIP("192.0.2.1").To4()}, []net.IP{net.ParseIP("2001:db8::1")}
	hp4 := []net.IP{net.ParseIP("192.0.2.53").To4()}
	tests := []actionCase{
		{"unknown passes", Config{Action: contract.ActionNXDomain}, "new.example.com", dns.TypeA, dns.RcodeSuccess, "", false, 0, contract.ActionPass, contract.DecisionUnknown, true},
		{"benign passes", Config{Action: contract.ActionNXDomain}, "good.example.com", dns.TypeA, dns.RcodeSuccess, "", false, 0, contract.ActionPass, contract.DecisionBenign, true},
		{"uncertain passes", Config{Action: contract.ActionNXDomain}, "maybe.example.com", dns.TypeA, dns.RcodeSuccess, "", false, 0, contract.ActionPass, contract.DecisionUncertain, true},
		{"bad value reads unknown", Config{Action: contract.ActionNXDomain}, "broken.example.com", dns.TypeA, dns.RcodeSuccess, "", false, 0, contract.ActionPass, contract.DecisionUnknown, true},
		{"allow beats malicious", Config{Action: contract.ActionNXDomain}, "allowed.example", dns.TypeA, dns.RcodeSuccess, "", false, 0, contract.ActionPass, contract.DecisionAllow, true},
		{"malicious nxdomain", Config{Action: contract.ActionNXDomain}, "bad.example.com", dns.TypeA, dns.RcodeNameError, "", true, dns.ExtendedErrorCodeFiltered, contract.ActionNXDomain, contract.DecisionMalicious, false},
		{"vetted block subdomain", Config{Action: contract.ActionNXDomain}, "www.evil.org", dns.TypeA, dns.RcodeNameError, "", true, dns.ExtendedErrorCodeBlocked, contract.ActionNXDomain, contract.DecisionBlock, false},
		{"nodata", Config{Action: contract.ActionNoData}, "bad.example.com", dns.TypeA, dns.RcodeSuccess, "", true, dns.ExtendedErrorCodeFiltered, contract.ActionNoData, contract.DecisionMalicious, false},
		{"refused", Config{Action: contract.ActionRefused}, "bad.example.com", dns.TypeA, dns.RcodeRefused, "", false, dns.ExtendedErrorCodeFiltered, contract.ActionRefused, contract.DecisionMalicious, false},
		{"null A", Config{Action: contract.ActionNull}, "bad.example.com", dns.TypeA, dns.RcodeSuccess, "0.0.0.0", false, dns.ExtendedErrorCodeFiltered, contract.ActionNull, contract.DecisionMalicious, false},
		{"null AAAA", Config{Action: contract.ActionNull}, "bad.example.com", dns.TypeAAAA, dns.RcodeSuccess, "::", false, dns.ExtendedErrorCodeFiltered, contract.ActionNull, contract.DecisionMalicious, false},
		{"null TXT is nodata", Config{Action: contract.ActionNull}, "bad.example.com", dns.TypeTXT, dns.RcodeSuccess, "", true, dns.ExtendedErrorCodeFiltered, contract.ActionNull, contract.DecisionMalicious, false},
		{"sinkhole A", Config{Action: contract.ActionSinkhole, SinkholeV4: v4, SinkholeV6: v6}, "bad.example.com", dns.TypeA, dns.RcodeSuccess, "192.0.2.1", false, dns.ExtendedErrorCodeFiltered, contract.ActionSinkhole, contract.DecisionMalicious, false},
		{"sinkhole AAAA", Config{Action: contract.ActionSinkhole, SinkholeV4: v4, SinkholeV6: v6}, "bad.example.com", dns.TypeAAAA, dns.RcodeSuccess, "2001:db8::1", false, dns.ExtendedErrorCodeFiltered, contract.ActionSinkhole, contract.DecisionMalicious, false},
		{"sinkhole v4 only AAAA nodata", Config{Action: contract.ActionSinkhole, SinkholeV4: v4}, "bad.example.com", dns.TypeAAAA, dns.RcodeSuccess, "", true, dns.ExtendedErrorCodeFiltered, contract.ActionSinkhole, contract.DecisionMalicious, false},
		{"honeypot", Config{Action: contract.ActionNXDomain, HoneypotV4: hp4}, "a.trap.net", dns.TypeA, dns.RcodeSuccess, "192.0.2.53", false, dns.ExtendedErrorCodeBlocked, contract.ActionHoneypot, contract.DecisionHoneypot, false},
		{"honeypot without addresses uses action", Config{Action: contract.ActionNXDomain}, "a.trap.net", dns.TypeA, dns.RcodeNameError, "", true, dns.ExtendedErrorCodeBlocked, contract.ActionNXDomain, contract.DecisionHoneypot, false},
		{"no_block client", Config{Action: contract.ActionNXDomain, NoBlock: []netip.Prefix{netip.MustParsePrefix("10.240.0.0/16")}}, "bad.example.com", dns.TypeA, dns.RcodeSuccess, "", false, 0, contract.ActionPass, contract.DecisionMalicious, true},
		{"excluded zone", Config{Action: contract.ActionNXDomain, Exclude: []string{"example.com."}}, "bad.example.com", dns.TypeA, dns.RcodeSuccess, "", false, 0, contract.ActionPass, "", true},
		{"fallthrough monitor", Config{Action: contract.ActionNXDomain, Fall: fall.Root}, "bad.example.com", dns.TypeA, dns.RcodeSuccess, "", false, 0, contract.ActionPass, contract.DecisionMalicious, true},
		{"invalid name passes", Config{Action: contract.ActionNXDomain}, "a\\032b.com", dns.TypeA, dns.RcodeSuccess, "", false, 0, contract.ActionPass, contract.DecisionUnknown, true},
	}
	for _, tc := range tests {
		for _, edns := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				tc.cfg.BlockedTTL = 42
				tc.cfg.ServerID = "test-1"
				h, em := testHandler(t, tc.cfg, testStore())
				rec := dnstest.NewRecorder(&test.ResponseWriter{})
				rc, err := h.ServeDNS(context.Background(), rec, query(tc.qname, tc.qtype, edns))
				if err != nil || rc != dns.RcodeSuccess {
					t.Fatalf("ServeDNS = %d, %v", rc, err)
				}
				m := rec.Msg
				if !tc.passed && m == nil {
					t.Fatal("no reply written")
				}
				if tc.passed {
					// test.NextHandler writes nothing itself; the recorder stays empty
					if m != nil {
						t.Fatalf("the plugin answered %v; want it passed on", m)
					}
				} else {
					checkBlockReply(t, m, edns, tc)
				}
				if len(em.events) != 1 {
					t.Fatalf("%d events; want 1", len(em.events))
				}
				ev := em.events[0]
				if ev.Action != tc.action || ev.Decision != tc.decision || ev.V != 1 || ev.Source != contract.SourceLive ||
					ev.Client != "10.240.0.1" || ev.QType != dns.TypeToString[tc.qtype] || ev.Server != "test-1" || ev.Proto != contract.ProtoUDP {
					t.Errorf("event %+v; want action %s decision %q", ev, tc.action, tc.decision)
				}
				if !tc.passed && ev.Rcode != dns.RcodeToString[tc.rcode] {
					t.Errorf("event rcode %s; want %s", ev.Rcode, dns.RcodeToString[tc.rcode])
				}
				if blocked := slices.Contains(contract.BlockingActions[:], ev.Action); blocked == tc.passed {
					t.Errorf("event action %s is blocking = %v, but the query passed = %v", ev.Action, blocked, tc.passed)
				}
			})
		}
	}
}

// checkBlockReply checks the plugin's own reply to a blocked query.
func checkBlockReply(t *testing.T, m *dns.Msg, edns bool, tc actionCase) {
	t.Helper()
	if m.Rcode != tc.rcode {
		t.Errorf("rcode %s; want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.rcode])
	}
	got := ""
	if len(m.Answer) > 0 {
		switch rr := m.Answer[0].(type) {
		case *dns.A:
			got = rr.A.String()
		case *dns.AAAA:
			got = rr.AAAA.String()
		}
		if m.Answer[0].Header().Ttl != 42 {
			t.Errorf("answer TTL %d; want 42", m.Answer[0].Header().Ttl)
		}
	}
	if got != tc.answer {
		t.Errorf("answer %q; want %q", got, tc.answer)
	}
	hasSOA := len(m.Ns) == 1 && m.Ns[0].Header().Rrtype == dns.TypeSOA
	if hasSOA != tc.soa {
		t.Errorf("SOA in authority = %v; want %v (%v)", hasSOA, tc.soa, m.Ns)
	}
	if hasSOA && m.Ns[0].(*dns.SOA).Minttl != 42 {
		t.Errorf("SOA minimum %d; want 42", m.Ns[0].(*dns.SOA).Minttl)
	}
	checkEDE(t, m, edns, tc.ede)
}

// TestEventProto: CoreDNS spells the transports as the vocabulary does.
func TestEventProto(t *testing.T) {
	for i, tcp := range []bool{false, true} {
		h, em := testHandler(t, Config{Action: contract.ActionNXDomain}, testStore())
		_, _ = h.ServeDNS(context.Background(), &test.ResponseWriter{TCP: tcp}, query("new.example.com", dns.TypeA, false))
		if len(em.events) != 1 || em.events[0].Proto != contract.Protos[i] {
			t.Errorf("tcp=%v: events %+v; want proto %s", tcp, em.events, contract.Protos[i])
		}
	}
}

func checkEDE(t *testing.T, m *dns.Msg, edns bool, want uint16) {
	t.Helper()
	opt := m.IsEdns0()
	if !edns {
		if opt != nil {
			t.Errorf("OPT in reply to a query without EDNS")
		}
		return
	}
	if opt == nil {
		t.Fatalf("no OPT in reply to an EDNS query")
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			if e.InfoCode != want || e.ExtraText == "" {
				t.Errorf("EDE %d %q; want %d with a reason", e.InfoCode, e.ExtraText, want)
			}
			return
		}
	}
	t.Errorf("no EDE; want %d", want)
}

func TestServeDNSEventFields(t *testing.T) {
	h, em := testHandler(t, Config{Action: contract.ActionNXDomain, ServerID: "s"}, testStore())
	h.Next = test.NextHandler(dns.RcodeServerFailure, errors.New("upstream down"))
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	rc, _ := h.ServeDNS(context.Background(), rec, query("A.B.Example.CO.UK", dns.TypeMX, false))
	if rc != dns.RcodeServerFailure {
		t.Fatalf("rc %d; the next plugin's rcode must be returned", rc)
	}
	ev := em.events[0]
	if em.keys[0] != "example.co.uk" || ev.Name != "a.b.example.co.uk" || ev.Rcode != "SERVFAIL" || ev.QType != "MX" {
		t.Errorf("key %q event %+v", em.keys[0], ev)
	}
	raw, _ := json.Marshal(ev)
	var generic map[string]any
	_ = json.Unmarshal(raw, &generic)
	for _, f := range []string{"v", "ts", "name", "qtype", "client", "source", "server", "action", "decision", "rcode", "latency_us", "proto"} {
		if _, ok := generic[f]; !ok {
			t.Errorf("event JSON %s lacks %q", raw, f)
		}
	}
	// a recorded downstream answer gives its own rcode
	h.Next = test.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		_ = w.WriteMsg(m)
		return dns.RcodeNameError, nil
	})
	_, _ = h.ServeDNS(context.Background(), dnstest.NewRecorder(&test.ResponseWriter{}), query("nx.example.com", dns.TypeA, false))
	if ev := em.events[1]; ev.Rcode != "NXDOMAIN" || em.keys[1] != "example.com" {
		t.Errorf("event %+v", ev)
	}
	// an invalid name is keyed and reported by its raw form
	_, _ = h.ServeDNS(context.Background(), dnstest.NewRecorder(&test.ResponseWriter{}), query("a\\032b.com", dns.TypeA, false))
	if ev := em.events[2]; ev.Name != "a\\ b.com" || em.keys[2] != "a\\ b.com" {
		t.Errorf("invalid name event %+v key %q", ev, em.keys[2])
	}
}

func TestRawName(t *testing.T) {
	long := strings.Repeat("a\\032", 300) + "."
	tests := []struct{ in, want string }{
		{".", "."},
		{"a\\ b.com.", "a\\ b.com"},
		{long, long[:1024]},
	}
	for _, tc := range tests {
		if got := rawName(tc.in); got != tc.want {
			t.Errorf("rawName(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestServeDNSFailOpenAndClosed(t *testing.T) {
	for _, closed := range []bool{false, true} {
		st := &fakeStore{err: context.DeadlineExceeded}
		h, em := testHandler(t, Config{Action: contract.ActionNXDomain, FailClosed: closed}, st)
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		rc, err := h.ServeDNS(context.Background(), rec, query("bad.example.com", dns.TypeA, true))
		if err != nil || rc != dns.RcodeSuccess {
			t.Fatalf("closed=%v: ServeDNS = %d, %v", closed, rc, err)
		}
		ev := em.events[0]
		if !closed {
			if rec.Msg != nil || ev.Action != contract.ActionPass || ev.Decision != contract.DecisionUnknown {
				t.Errorf("fail open: reply %v event %+v; want passed on as unknown", rec.Msg, ev)
			}
			continue
		}
		if rec.Msg == nil || rec.Msg.Rcode != dns.RcodeRefused || ev.Action != contract.ActionRefused {
			t.Errorf("fail closed: reply %v event %+v; want REFUSED", rec.Msg, ev)
		}
		checkEDE(t, rec.Msg, true, dns.ExtendedErrorCodeNotReady)
	}
}

func TestServeDNSOutsideZones(t *testing.T) {
	h, em := testHandler(t, Config{Action: contract.ActionNXDomain, Zones: []string{"example.org."}}, testStore())
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	_, _ = h.ServeDNS(context.Background(), rec, query("bad.example.com", dns.TypeA, false))
	if rec.Msg != nil || len(em.events) != 0 {
		t.Errorf("outside the zones: reply %v events %v; want untouched", rec.Msg, em.events)
	}
}

func TestReady(t *testing.T) {
	h, _ := testHandler(t, Config{}, &fakeStore{err: errUnavailable})
	if h.Ready() {
		t.Error("ready before Redis was reached")
	}
	h, _ = testHandler(t, Config{ReadyAlways: true}, &fakeStore{err: errUnavailable})
	if !h.Ready() {
		t.Error("ready always: not ready")
	}
	h, _ = testHandler(t, Config{}, testStore())
	if !h.Ready() {
		t.Error("not ready with Redis reachable")
	}
}

func TestErrorReason(t *testing.T) {
	bg := context.Background()
	tests := []struct {
		err  error
		want string
	}{
		{errUnavailable, "unavailable"},
		{context.DeadlineExceeded, "timeout"},
		{errors.New("connection reset"), "error"},
	}
	for _, tc := range tests {
		if got := errorReason(tc.err, bg); got != tc.want {
			t.Errorf("errorReason(%v) = %s; want %s", tc.err, got, tc.want)
		}
	}
}
