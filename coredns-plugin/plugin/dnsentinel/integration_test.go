package dnsentinel

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
	"github.com/redis/rueidis"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dnsentinel/coredns-plugin/contract"
)

// The integration tests run against the real Redis and Kafka of the local stack when
// DNSENTINEL_INTEGRATION=1 (the Python suite sets it). Then an unreachable service is a
// failure, never a skip. Addresses: DNSENTINEL_REDIS_ADDR, DNSENTINEL_KAFKA_BROKERS.
func integration(t *testing.T) (redisAddr string, brokers []string) {
	t.Helper()
	if os.Getenv("DNSENTINEL_INTEGRATION") != "1" {
		t.Skip("set DNSENTINEL_INTEGRATION=1 to run against the real Redis and Kafka")
	}
	redisAddr = envOr("DNSENTINEL_REDIS_ADDR", "127.0.0.1:6379")
	brokers = strings.Split(envOr("DNSENTINEL_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
	return redisAddr, brokers
}

func testingIntegration() string { return os.Getenv("DNSENTINEL_INTEGRATION") }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func TestIntegrationRedisAndKafka(t *testing.T) {
	redisAddr, brokers := integration(t)
	suffix := fmt.Sprintf("%08x", rand.Uint32())
	prefix, topic := "itest-"+suffix, "itest-queries-"+suffix

	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{redisAddr}, DisableCache: true})
	if err != nil {
		t.Fatalf("Redis %s unreachable: %v", redisAddr, err)
	}
	defer rc.Close()
	ctx := context.Background()
	t.Cleanup(func() {
		rc.Do(ctx, rc.B().Del().Key(contract.VettedKey(prefix), contract.VerdictKey(prefix, "bad.example.com")).Build())
	})
	must := func(r rueidis.RedisResult) {
		t.Helper()
		if err := r.Error(); err != nil {
			t.Fatal(err)
		}
	}
	must(rc.Do(ctx, rc.B().Set().Key(contract.VerdictKey(prefix, "bad.example.com")).Value(malicious).Build()))

	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	admin := kadm.NewClient(adm)
	if _, err := admin.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatalf("Kafka %v: creating topic %s: %v", brokers, topic, err)
	}
	t.Cleanup(func() { _, _ = admin.DeleteTopics(context.Background(), topic) })

	cfg := defaultConfig()
	cfg.Zones = []string{"."}
	cfg.RedisAddr, cfg.RedisPrefix, cfg.Brokers, cfg.Topic, cfg.ServerID = redisAddr, prefix, brokers, topic, "itest"
	cfg.RedisTimeout = 50 * time.Millisecond // generous: the machine is shared and loaded
	h := newHandler(cfg)
	h.Next = test.NextHandler(dns.RcodeSuccess, nil)
	if err := h.start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.stop() }()
	deadline := time.Now().Add(5 * time.Second)
	for !h.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("not ready 5 s after start with Redis up")
		}
		time.Sleep(10 * time.Millisecond)
	}

	ask := func(name string) *dns.Msg {
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		_, _ = h.ServeDNS(ctx, rec, query(name, dns.TypeA, true))
		return rec.Msg
	}
	if m := ask("bad.example.com"); m == nil || m.Rcode != dns.RcodeNameError {
		t.Fatalf("malicious verdict: %v; want NXDOMAIN", m)
	}
	// the second lookup is answered by the client-side cache
	st := h.store.(*redisStore)
	res, err := st.lookup(ctx, parseName("bad.example.com"))
	if err != nil || !res.CacheHit {
		t.Errorf("second lookup: %+v, %v; want a local cache hit", res, err)
	}
	// a vetted allow written elsewhere takes effect within 1 s (server-assisted invalidation)
	must(rc.Do(ctx, rc.B().Hset().Key(contract.VettedKey(prefix)).FieldValue().
		FieldValue("bad.example.com", `{"action":"allow","by":"itest","at":1}`).Build()))
	start := time.Now()
	for m := ask("bad.example.com"); m != nil; m = ask("bad.example.com") {
		if time.Since(start) > time.Second {
			t.Fatal("vetted allow not in effect after 1 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// and a vetted block likewise
	must(rc.Do(ctx, rc.B().Hset().Key(contract.VettedKey(prefix)).FieldValue().
		FieldValue("example.org", `{"action":"block","by":"itest","at":1}`).Build()))
	start = time.Now()
	for m := ask("www.example.org"); m == nil; m = ask("www.example.org") {
		if time.Since(start) > time.Second {
			t.Fatal("vetted block not in effect after 1 s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// a new model verdict for a name already answered (and cached as unknown) too
	if m := ask("late.example.net"); m != nil {
		t.Fatalf("unknown name answered by the plugin: %v", m)
	}
	t.Cleanup(func() { rc.Do(ctx, rc.B().Del().Key(contract.VerdictKey(prefix, "late.example.net")).Build()) })
	must(rc.Do(ctx, rc.B().Set().Key(contract.VerdictKey(prefix, "late.example.net")).Value(malicious).Build()))
	start = time.Now()
	for m := ask("late.example.net"); m == nil; m = ask("late.example.net") {
		if time.Since(start) > time.Second {
			t.Fatal("new malicious verdict not in effect after 1 s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// the events arrive in Kafka with the SPEC fields
	h.emit.(*kafkaEmitter).cl.Flush(ctx)
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	seen := map[string]map[string]any{}
	for seen["bad.example.com"] == nil || seen["www.example.org"] == nil {
		fs := cons.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatalf("events seen %v; want bad.example.com and www.example.org", seen)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var ev map[string]any
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Errorf("event %s: %v", r.Value, err)
				return
			}
			seen[ev["name"].(string)] = ev
			if k := string(r.Key); k != "example.com" && k != "example.org" && k != "example.net" {
				t.Errorf("key %q", r.Key)
			}
		})
	}
	if ev := seen["www.example.org"]; ev["action"] != "nxdomain" || ev["decision"] != "block" ||
		ev["rcode"] != "NXDOMAIN" || ev["server"] != "itest" || ev["source"] != "live" || ev["v"] != float64(1) {
		t.Errorf("event %v", ev)
	}
}

// TestIntegrationFailOpen: with Redis unreachable every answer still comes within the bound.
func TestIntegrationFailOpen(t *testing.T) {
	integration(t)
	cfg := defaultConfig()
	cfg.Zones, cfg.NoEvents = []string{"."}, true
	cfg.RedisAddr = "127.0.0.1:1"
	h := newHandler(cfg)
	h.Next = test.NextHandler(dns.RcodeSuccess, nil)
	if err := h.start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.stop() }()
	for i := 0; i < 100; i++ {
		start := time.Now()
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		if _, err := h.ServeDNS(context.Background(), rec, query("a.example.com", dns.TypeA, false)); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Fatalf("answer took %s with Redis down", d)
		}
	}
}

// TestIntegrationRefreshAfterTimeout: a lookup that runs out of the query's time is finished
// in the background, so the next query of the name is a local cache hit.
func TestIntegrationRefreshAfterTimeout(t *testing.T) {
	redisAddr, _ := integration(t)
	cfg := defaultConfig()
	cfg.RedisAddr, cfg.RedisPrefix = redisAddr, fmt.Sprintf("itest-%08x", rand.Uint32())
	s := newRedisStore(cfg, t.Logf)
	s.connect()
	defer s.close()
	name := "slow.example.com"
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	if _, err := s.lookup(ctx, parseName(name)); err == nil {
		t.Fatal("lookup with an expired deadline succeeded")
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(s.refreshSlots) > 0 { // the background refresh is running
		if time.Now().After(deadline) {
			t.Fatal("background refresh still running after 3 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	res, err := s.lookup(context.Background(), parseName(name))
	if err != nil || !res.CacheHit {
		t.Fatalf("first lookup after the refresh: %+v %v; want a local cache hit", res, err)
	}
}
