package dnsentinel

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// maxEventBytes is the SPEC §2.2 size limit of a query event.
const maxEventBytes = 4096

// maxRawName bounds the raw name of an invalid query in an event (SPEC §2.2: ≤ 1024 bytes).
const maxRawName = 1024

// event is the query event of SPEC §2.2.
type event struct {
	V         int    `json:"v"`
	TS        int64  `json:"ts"`
	Name      string `json:"name"`
	QType     string `json:"qtype"`
	Client    string `json:"client"`
	Source    string `json:"source"`
	Server    string `json:"server,omitempty"`
	Action    string `json:"action,omitempty"`
	Decision  string `json:"decision,omitempty"`
	Rcode     string `json:"rcode,omitempty"`
	LatencyUS int64  `json:"latency_us"`
	Proto     string `json:"proto,omitempty"`
}

// emitter hands events to Kafka without ever waiting for it.
type emitter interface {
	emit(key []byte, ev *event)
	buffered() int64
	close()
}

// kafkaEmitter uses franz-go's TryProduce: when MaxBufferedRecords is reached the record
// fails at once with ErrMaxBuffered instead of blocking, and is dropped and counted. Batches
// linger a few milliseconds and are zstd-compressed; acks from the leader only, no
// idempotence: losing an event on a broker failover is acceptable, delaying DNS is not.
type kafkaEmitter struct {
	cl     *kgo.Client
	server string
	ctx    context.Context
	drop   func(reason string)
	ok     func()

	brokers  string
	warnf    func(format string, args ...any)
	lastWarn atomic.Int64 // unix nanoseconds of the last delivery warning
}

// warnEvery spaces the delivery warnings: a wrong SASL password or an untrusted CA fails
// every event the same way, and the log must say why once in a while, not per event.
const warnEvery = time.Minute

func newKafkaEmitter(cfg Config) (*kafkaEmitter, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2, as SPEC §2.1
		// lz4 first: nearly zstd's ratio on these small JSON events for a fraction of the CPU,
		// which the DNS host needs for answering.
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.ZstdCompression(), kgo.NoCompression()),
		kgo.ProducerLinger(10 * time.Millisecond),
		kgo.MaxBufferedRecords(cfg.KafkaBuffer),
		kgo.RequiredAcks(kgo.LeaderAck()),
		kgo.DisableIdempotentWrite(),
		kgo.RecordDeliveryTimeout(30 * time.Second),
		kgo.ProducerBatchMaxBytes(1 << 20),
	}
	if cfg.KafkaTLS != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg.KafkaTLS))
	}
	if len(cfg.KafkaSASL) == 3 {
		mech, user, pass := cfg.KafkaSASL[0], cfg.KafkaSASL[1], cfg.KafkaSASL[2]
		switch mech {
		case "plain":
			opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
		case "scram-sha-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		case "scram-sha-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	server := cfg.ServerID
	return &kafkaEmitter{
		cl:      cl,
		server:  server,
		ctx:     context.Background(),
		drop:    func(reason string) { eventsDropped.WithLabelValues(server, reason).Inc() },
		ok:      func() { eventsProduced.WithLabelValues(server).Inc() },
		brokers: strings.Join(cfg.Brokers, ","),
		warnf:   log.Warningf,
	}, nil
}

// eventRecord is a Kafka record and room for its value in one allocation per event (the
// record belongs to franz-go once produced, so it cannot be pooled). Nearly every event fits
// in buf; a longer one grows out of it.
type eventRecord struct {
	rec kgo.Record
	buf [320]byte
}

func (k *kafkaEmitter) emit(key []byte, ev *event) {
	er := new(eventRecord)
	value := appendEvent(er.buf[:0], ev)
	if len(value) > maxEventBytes {
		k.drop("too_large")
		return
	}
	er.rec.Key, er.rec.Value = key, value
	k.cl.TryProduce(k.ctx, &er.rec, k.promise)
}

// promise runs on franz-go's callback goroutine, serially: it must stay short.
func (k *kafkaEmitter) promise(_ *kgo.Record, err error) {
	switch {
	case err == nil:
		k.ok()
	case errors.Is(err, kgo.ErrMaxBuffered):
		k.drop("buffer_full")
	case errors.Is(err, kgo.ErrClientClosed):
		k.drop("closed")
	default:
		k.drop("kafka_error")
		k.warn(err)
	}
}

// warn logs why events fail (e.g. SASL_AUTHENTICATION_FAILED), at most once per warnEvery.
func (k *kafkaEmitter) warn(err error) {
	now := time.Now().UnixNano()
	if last := k.lastWarn.Load(); last != 0 && now-last < int64(warnEvery) {
		return
	}
	k.lastWarn.Store(now)
	k.warnf("kafka %s: events dropped, delivery failed: %v (check kafka_sasl and kafka_tls)", k.brokers, err)
}

func (k *kafkaEmitter) buffered() int64 { return k.cl.BufferedProduceRecords() }

// close flushes what is buffered for up to 5 seconds, then gives up (counted as closed).
func (k *kafkaEmitter) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = k.cl.Flush(ctx)
	k.cl.Close()
}
