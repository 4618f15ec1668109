package dnsentinel

import (
	"context"
	"fmt"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// BenchmarkServeDNSPass: the plugin's own cost on the pass path with a fake store and a fake
// emitter (normalization, candidates, decision, event, recorder).
func BenchmarkServeDNSPass(b *testing.B) {
	em := &nopEmitter{}
	h := newHandler(Config{Zones: []string{"."}, Action: ActionNXDomain, RedisTimeout: 5e6})
	h.store, h.emit = testStore(), em
	h.Next = test.NextHandler(dns.RcodeSuccess, nil)
	q := query("www.good.example.com", dns.TypeA, false)
	w := &test.ResponseWriter{}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = h.ServeDNS(context.Background(), w, q)
	}
}

// BenchmarkRedisCachedLookup: a client-side cache hit against the real Redis
// (DNSENTINEL_INTEGRATION=1).
func BenchmarkRedisCachedLookup(b *testing.B) {
	if testingIntegration() == "" {
		b.Skip("set DNSENTINEL_INTEGRATION=1")
	}
	cfg := defaultConfig()
	cfg.RedisPrefix = "bench-lookup"
	s := newRedisStore(cfg, b.Logf)
	s.connect()
	defer s.close()
	names := make([]*parsed, 1000)
	for i := range names {
		names[i] = parseName(fmt.Sprintf("h%d.example.com", i))
		_, _ = s.lookup(context.Background(), names[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		n := names[i%len(names)]
		i++
		res, err := s.lookup(context.Background(), n)
		if err != nil || !res.CacheHit {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

type nopEmitter struct{}

func (nopEmitter) emit([]byte, *event) {}
func (nopEmitter) buffered() int64     { return 0 }
func (nopEmitter) close()              {}

var _ = dnstest.NewRecorder
