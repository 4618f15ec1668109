package dnsentinel

import (
	"context"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dnsentinel/coredns-plugin/contract"
)

func TestMetricsCounted(t *testing.T) {
	h, _ := testHandler(t, Config{Action: contract.ActionNXDomain}, testStore())
	tests := []struct {
		qname, decision, action string
	}{
		{"bad.example.com", contract.DecisionMalicious, contract.ActionNXDomain},
		{"www.evil.org", contract.DecisionBlock, contract.ActionNXDomain},
		{"new.example.com", contract.DecisionUnknown, contract.ActionPass},
	}
	for _, tc := range tests {
		before := testutil.ToFloat64(queriesTotal.WithLabelValues("", tc.decision, tc.action))
		local := testutil.ToFloat64(cacheLookups.WithLabelValues("", "redis")) // fakes never hit
		_, _ = h.ServeDNS(context.Background(), dnstest.NewRecorder(&test.ResponseWriter{}), query(tc.qname, dns.TypeA, false))
		if got := testutil.ToFloat64(queriesTotal.WithLabelValues("", tc.decision, tc.action)); got != before+1 {
			t.Errorf("%s: queries_total{%s,%s} went %v -> %v", tc.qname, tc.decision, tc.action, before, got)
		}
		if got := testutil.ToFloat64(cacheLookups.WithLabelValues("", "redis")); got != local+1 {
			t.Errorf("%s: cache_lookups_total{redis} went %v -> %v", tc.qname, local, got)
		}
	}
	errs := testutil.ToFloat64(redisErrors.WithLabelValues("", "bad_value"))
	_, _ = h.ServeDNS(context.Background(), dnstest.NewRecorder(&test.ResponseWriter{}), query("broken.example.com", dns.TypeA, false))
	if got := testutil.ToFloat64(redisErrors.WithLabelValues("", "bad_value")); got != errs+1 {
		t.Errorf("bad_value errors went %v -> %v", errs, got)
	}
}
