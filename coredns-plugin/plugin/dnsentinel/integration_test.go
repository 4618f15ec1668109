package dnsentinel

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
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
	ctx := context.Background()
	rc, set := itestRedis(t, redisAddr, prefix)
	set(contract.VerdictKey(prefix, "bad.example.com"), malicious)
	itestTopic(t, brokers, topic)

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
	eventually(t, 5*time.Second, h.Ready, "not ready 5 s after start with Redis up")

	ask := func(name string) *dns.Msg { // the plugin's own answer; nil when passed on
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		_, _ = h.ServeDNS(ctx, rec, query(name, dns.TypeA, true))
		return rec.Msg
	}
	answered := func(name string) bool { return ask(name) != nil }
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
	vet := func(entry, action string) {
		record := `{"action":"` + action + `","by":"itest","at":1}`
		if err := rc.Do(ctx, rc.B().Hset().Key(contract.VettedKey(prefix)).FieldValue().FieldValue(entry, record).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
	vet("bad.example.com", contract.DecisionAllow)
	eventually(t, time.Second, func() bool { return !answered("bad.example.com") }, "vetted allow not in effect after 1 s")
	// and a vetted block likewise
	vet("example.org", contract.DecisionBlock)
	eventually(t, time.Second, func() bool { return answered("www.example.org") }, "vetted block not in effect after 1 s")

	// a new model verdict for a name already answered (and cached as unknown) too
	if m := ask("late.example.net"); m != nil {
		t.Fatalf("unknown name answered by the plugin: %v", m)
	}
	set(contract.VerdictKey(prefix, "late.example.net"), malicious)
	eventually(t, time.Second, func() bool { return answered("late.example.net") }, "new malicious verdict not in effect after 1 s")

	// the events arrive in Kafka with the SPEC fields
	h.emit.(*kafkaEmitter).cl.Flush(ctx)
	seen := itestEvents(t, brokers, topic, "bad.example.com", "www.example.org")
	if ev := seen["www.example.org"]; ev["action"] != contract.ActionNXDomain || ev["decision"] != contract.DecisionBlock ||
		ev["rcode"] != "NXDOMAIN" || ev["server"] != "itest" || ev["source"] != contract.SourceLive || ev["v"] != float64(1) {
		t.Errorf("event %v", ev)
	}
}

// itestRedis connects to the real Redis; set writes a key there, deleted with the prefix's
// vetted hash when the test ends.
func itestRedis(t *testing.T, addr, prefix string) (rc rueidis.Client, set func(key, value string)) {
	t.Helper()
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
	if err != nil {
		t.Fatalf("Redis %s unreachable: %v", addr, err)
	}
	keys := []string{contract.VettedKey(prefix)}
	t.Cleanup(func() {
		rc.Do(context.Background(), rc.B().Del().Key(keys...).Build())
		rc.Close()
	})
	return rc, func(key, value string) {
		t.Helper()
		keys = append(keys, key)
		if err := rc.Do(context.Background(), rc.B().Set().Key(key).Value(value).Build()).Error(); err != nil {
			t.Fatal(err)
		}
	}
}

// itestTopic creates a Kafka topic of 3 partitions for the test and deletes it afterwards.
func itestTopic(t *testing.T, brokers []string, topic string) {
	t.Helper()
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	admin := kadm.NewClient(adm)
	t.Cleanup(func() {
		_, _ = admin.DeleteTopics(context.Background(), topic)
		adm.Close()
	})
	if _, err := admin.CreateTopic(context.Background(), 3, 1, nil, topic); err != nil {
		t.Fatalf("Kafka %v: creating topic %s: %v", brokers, topic, err)
	}
}

// itestEvents reads the topic from the start until there is an event for each of names (10 s
// at most), and returns the last event of each name seen; every key must be a routing key.
func itestEvents(t *testing.T, brokers []string, topic string, names ...string) map[string]map[string]any {
	t.Helper()
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := map[string]map[string]any{}
	for slices.ContainsFunc(names, func(n string) bool { return seen[n] == nil }) {
		fs := cons.PollFetches(pctx)
		if pctx.Err() != nil {
			t.Fatalf("events seen %v; want %v", seen, names)
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
	return seen
}

// eventually polls cond every 10 ms and fails the test with msg if it is not true within limit.
func eventually(t *testing.T, limit time.Duration, cond func() bool, msg string) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
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
