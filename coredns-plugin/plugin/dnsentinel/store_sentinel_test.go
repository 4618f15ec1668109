package dnsentinel

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	pkgtls "github.com/coredns/coredns/plugin/pkg/tls"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/rueidis"

	"github.com/dnsentinel/coredns-plugin/contract"
)

// TestSentinelFailover: one handler configured through Sentinel keeps answering from Redis
// after its primary is killed and a replica promoted, without a restart, and the lookups in
// between fail open and are counted. It needs a topology to break, which
// tests/verdict_cache/test_vc_sentinel.py starts and describes in DNSENTINEL_SENTINEL_ADDRS,
// _MASTER, _USER, _PASSWORD, _REDIS_USER, _REDIS_PASSWORD, _KILL_PID (the primary's process) and
// _CA (TLS everywhere, verified with this CA, as with `redis_tls CA`).
func TestSentinelFailover(t *testing.T) {
	addrs := os.Getenv("DNSENTINEL_SENTINEL_ADDRS")
	pid, _ := strconv.Atoi(os.Getenv("DNSENTINEL_SENTINEL_KILL_PID"))
	if addrs == "" || pid <= 0 {
		t.Skip("needs a Sentinel topology: run tests/verdict_cache/test_vc_sentinel.py")
	}
	cfg := defaultConfig()
	cfg.Zones, cfg.NoEvents, cfg.ServerID = []string{"."}, true, "stest"
	cfg.SentinelMaster, cfg.SentinelAddrs = envOr("DNSENTINEL_SENTINEL_MASTER", "dnsentinel"), strings.Split(addrs, ",")
	cfg.SentinelUser, cfg.SentinelPassword = os.Getenv("DNSENTINEL_SENTINEL_USER"), os.Getenv("DNSENTINEL_SENTINEL_PASSWORD")
	cfg.RedisUser, cfg.RedisPassword = os.Getenv("DNSENTINEL_SENTINEL_REDIS_USER"), os.Getenv("DNSENTINEL_SENTINEL_REDIS_PASSWORD")
	cfg.RedisPrefix = fmt.Sprintf("stest-%08x", rand.Uint32())
	cfg.RedisTimeout = 50 * time.Millisecond                 // generous: the machine is shared and loaded
	if ca := os.Getenv("DNSENTINEL_SENTINEL_CA"); ca != "" { // TLS to the Sentinels and the servers
		tlsCfg, err := pkgtls.NewTLSConfigFromArgs(ca)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RedisTLS = tlsCfg
	}
	h := newHandler(cfg)
	h.Next = test.NextHandler(dns.RcodeSuccess, nil)
	if err := h.start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.stop() }()
	eventually(t, 10*time.Second, h.Ready, "not ready 10 s after start through the Sentinels")

	ctx := context.Background()
	writer, err := rueidis.NewClient(withSentinel(cfg, rueidis.ClientOption{
		Username: cfg.RedisUser, Password: cfg.RedisPassword, TLSConfig: cfg.RedisTLS, DisableCache: true, Dialer: netDialer()}))
	if err != nil {
		t.Fatalf("writer through the Sentinels: %v", err)
	}
	defer writer.Close()
	set := func(name string) error {
		return writer.Do(ctx, writer.B().Set().Key(contract.VerdictKey(cfg.RedisPrefix, name)).Value(malicious).Build()).Error()
	}
	ask := func(name string) *dns.Msg { // the plugin's own answer; nil when passed on
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		_, _ = h.ServeDNS(ctx, rec, query(name, dns.TypeA, false))
		return rec.Msg
	}
	blocked := func(name string) bool { m := ask(name); return m != nil && m.Rcode == dns.RcodeNameError }

	if err := set("before.example.com"); err != nil {
		t.Fatal(err)
	}
	if err := writer.Do(ctx, writer.B().Wait().Numreplicas(1).Timeout(5000).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return blocked("before.example.com") }, "malicious verdict not answered before the failover")

	failed := func() float64 {
		n := 0.0
		for _, reason := range []string{"timeout", "error", "unavailable"} {
			n += testutil.ToFloat64(redisErrors.WithLabelValues("", reason))
		}
		return n
	}
	errorsBefore := failed()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the primary (pid %d): %v", pid, err)
	}
	i := 0
	eventually(t, 60*time.Second, func() bool { // the switch: every query is still answered (bounded wait)
		i++
		ask(fmt.Sprintf("during-%d.example.com", i))
		time.Sleep(50 * time.Millisecond)
		return set("after.example.com") == nil
	}, "no new primary within 60 s of killing the old one")
	eventually(t, 30*time.Second, func() bool { return blocked("after.example.com") },
		"the plugin does not read the new primary 30 s after the failover")
	if !blocked("before.example.com") {
		t.Error("the verdict written before the failover is gone")
	}
	if failed() <= errorsBefore {
		t.Error("no failed (fail-open) lookup counted during the failover")
	}
}
