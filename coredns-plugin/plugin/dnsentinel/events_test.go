package dnsentinel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestKafkaEmitterProduces(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "q"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := defaultConfig()
	cfg.Brokers, cfg.Topic, cfg.ServerID = c.ListenAddrs(), "q", "emit-test"
	em, err := newKafkaEmitter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"a.example.com", "b.example.com", "x.github.io"}
	for _, n := range names {
		em.emit([]byte(n), &event{V: 1, TS: 1795392000000, Name: n, QType: "A", Client: "192.0.2.1", Source: "live"})
	}
	em.close() // flushes

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("q"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got []*kgo.Record
	for len(got) < len(names) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d events", len(got), len(names))
		}
		got = append(got, fs.Records()...)
	}
	want := kgo.StickyKeyPartitioner(nil).ForTopic("q")
	for _, r := range got {
		var ev map[string]any
		if err := json.Unmarshal(r.Value, &ev); err != nil || ev["v"] != float64(1) || ev["name"] != string(r.Key) {
			t.Errorf("record %s: %s (%v)", r.Key, r.Value, err)
		}
		if p := want.Partition(r, 6); int32(p) != r.Partition {
			t.Errorf("key %s on partition %d; murmur2 says %d", r.Key, r.Partition, p)
		}
	}
}

// TestKafkaEmitterNeverWaits: with no broker at all, emit returns at once and the events
// beyond the buffer are dropped and counted instead of blocking the caller.
func TestKafkaEmitterNeverWaits(t *testing.T) {
	cfg := defaultConfig()
	cfg.Brokers, cfg.Topic, cfg.KafkaBuffer, cfg.ServerID = []string{"127.0.0.1:1"}, "q", 10, "never-waits"
	em, err := newKafkaEmitter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dropped := 0
	em.drop = func(reason string) {
		if reason == "buffer_full" {
			dropped++
		}
	}
	start := time.Now()
	for i := 0; i < 100; i++ {
		em.emit([]byte("k"), &event{V: 1, Name: "k", QType: "A", Source: "live"})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("100 emits took %s with Kafka down", d)
	}
	if em.buffered() > 10 {
		t.Errorf("%d buffered; the limit is 10", em.buffered())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_ = em.cl.Flush(ctx)
	em.cl.Close()
	if dropped < 90 {
		t.Errorf("%d dropped as buffer_full; want at least 90", dropped)
	}
}

func TestKafkaEmitterTooLarge(t *testing.T) {
	cfg := defaultConfig()
	cfg.Brokers, cfg.Topic = []string{"127.0.0.1:1"}, "q"
	em, err := newKafkaEmitter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer em.cl.Close()
	reason := ""
	em.drop = func(r string) { reason = r }
	big := make([]byte, 5000)
	for i := range big {
		big[i] = 'a'
	}
	em.emit([]byte("k"), &event{V: 1, Name: string(big)})
	if reason != "too_large" || em.buffered() != 0 {
		t.Errorf("reason %q buffered %d; want too_large and nothing buffered", reason, em.buffered())
	}
}

// TestKafkaEmitterSCRAM: `kafka_sasl scram-sha-512 USER PASSWORD` reaches franz-go (the
// cluster profile's brokers accept only SCRAM-SHA-512); several seed brokers are all used.
func TestKafkaEmitterSCRAM(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(2, "q"), kfake.EnableSASL(),
		kfake.Superuser("SCRAM-SHA-512", "coredns", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg, err := parse(caddy.NewTestController("dns", "dnsentinel {\nkafka "+strings.Join(c.ListenAddrs(), " ")+
		"\nkafka_sasl SCRAM-SHA-512 coredns s3cret\ntopic q\n}"))
	if err != nil {
		t.Fatal(err)
	}
	em, err := newKafkaEmitter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	produced := testutil.ToFloat64(eventsProduced.WithLabelValues(cfg.ServerID))
	em.emit([]byte("a.example.com"), &event{V: 1, TS: 1795392000000, Name: "a.example.com", QType: "A", Client: "192.0.2.1", Source: "live"})
	em.close() // flushes
	if got := testutil.ToFloat64(eventsProduced.WithLabelValues(cfg.ServerID)); got != produced+1 {
		t.Fatalf("events produced with SCRAM-SHA-512: %v; want 1", got-produced)
	}
}

// TestKafkaEmitterWarnsOncePerInterval: a delivery error (e.g. a wrong SASL password) is
// logged with the brokers, but not once per event.
func TestKafkaEmitterWarnsOncePerInterval(t *testing.T) {
	var logged []string
	em := &kafkaEmitter{brokers: "k1:9092,k2:9092", drop: func(string) {}, ok: func() {},
		warnf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }}
	sasl := errors.New("SASL_AUTHENTICATION_FAILED: SASL Authentication failed")
	for i := 0; i < 3; i++ {
		em.promise(nil, sasl)
	}
	if len(logged) != 1 || !strings.Contains(logged[0], "k1:9092,k2:9092") || !strings.Contains(logged[0], "SASL_AUTHENTICATION_FAILED") {
		t.Fatalf("logged %q; want one line naming the brokers and the cause", logged)
	}
}
