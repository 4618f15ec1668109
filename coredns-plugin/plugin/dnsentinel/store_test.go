package dnsentinel

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/dnsentinel/coredns-plugin/contract"
)

// miniredis has no CLIENT TRACKING, so these tests read without the client-side cache;
// the cached path against a real Redis is covered by the integration test.
func miniStore(t *testing.T) (*miniredis.Miniredis, *redisStore) {
	t.Helper()
	mr := miniredis.RunT(t)
	cfg := defaultConfig()
	cfg.RedisAddr = mr.Addr()
	cfg.RedisPrefix = "t1"
	s := newRedisStore(cfg, t.Logf)
	s.opt.DisableCache = true
	s.connect()
	t.Cleanup(s.close)
	return mr, s
}

func TestRedisStoreLookup(t *testing.T) {
	mr, s := miniStore(t)
	mr.Set(contract.VerdictKey("t1", "bad.example.com"), malicious)
	mr.HSet(contract.VettedKey("t1"), "example.com", `{"action":"allow","by":"a","at":1}`)
	mr.HSet(contract.VettedKey("t1"), "*.evil.org", `{"action":"block","by":"a","at":1}`)
	mr.HSet(contract.VettedKey("t1"), "odd.org", `{"action":"explode"}`)
	mr.HSet(contract.VettedKey("t1"), "junk.org", `not json`)
	tests := []struct {
		name     string
		verdict  string
		decision string
	}{
		{"bad.example.com", malicious, contract.DecisionMalicious},
		{"example.com", "", contract.DecisionAllow},
		{"a.b.evil.org", "", contract.DecisionBlock},
		{"x.odd.org", "", contract.DecisionUnknown},
		{"junk.org", "", contract.DecisionUnknown},
		{"nothing.net", "", contract.DecisionUnknown},
	}
	for _, tc := range tests {
		cands := contract.Candidates(tc.name)
		res, err := s.lookup(context.Background(), parseName(tc.name))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		label := ""
		if v, err := contract.ParseVerdict(res.Verdict); err == nil {
			label = v.Label
		}
		if res.Verdict != tc.verdict || contract.Decide(cands, res.Actions, label) != tc.decision {
			t.Errorf("%s: %+v; want verdict %q decision %s", tc.name, res, tc.verdict, tc.decision)
		}
	}
}

func TestRedisStoreUnavailableAndTimeout(t *testing.T) {
	cfg := defaultConfig()
	cfg.RedisAddr = "127.0.0.1:1" // nothing listens there
	s := newRedisStore(cfg, func(string, ...any) {})
	go s.connect()
	defer s.close()
	if _, err := s.lookup(context.Background(), parseName("a.com")); !errors.Is(err, errUnavailable) {
		t.Errorf("lookup before connecting: %v; want errUnavailable", err)
	}
	if s.connected() {
		t.Error("connected to nothing")
	}

	mr, s2 := miniStore(t)
	mr.SetError("") // healthy
	mr.Close()      // now unreachable: a lookup must fail fast, not hang
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := s2.lookup(ctx, parseName("a.com")); err == nil {
		t.Error("lookup against a closed server succeeded")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("lookup took %s; the caller's deadline must bound it", d)
	}
}

func TestParseVettedAction(t *testing.T) {
	tests := map[string]string{
		`{"action":"nope"}`: "",
		`{}`:                "",
		`[1]`:               "",
		`garbage`:           "",
	}
	for _, a := range contract.VettedActions {
		tests[`{"action":"`+a+`","by":"a","at":1}`] = a
	}
	for in, want := range tests {
		if got := parseVettedAction(in); got != want {
			t.Errorf("parseVettedAction(%s) = %q; want %q", in, got, want)
		}
	}
}

// TestSentinelOptionWiring: with redis_sentinel the client dials the Sentinels (not redis),
// names the master set, authenticates to them with their own user, uses redis_tls for them
// too, and re-checks the topology periodically; without it, nothing of that is set.
func TestSentinelOptionWiring(t *testing.T) {
	cfg := defaultConfig()
	cfg.RedisTLS = &tls.Config{MinVersion: tls.VersionTLS12}
	cfg.RedisUser, cfg.RedisPassword = "coredns", "data-pw"
	plain := newRedisStore(cfg, t.Logf)
	if plain.opt.Sentinel.MasterSet != "" || !slices.Equal(plain.opt.InitAddress, []string{"127.0.0.1:6379"}) || plain.where != "127.0.0.1:6379" {
		t.Errorf("no sentinel: %+v, where %q", plain.opt.Sentinel, plain.where)
	}
	cfg.SentinelMaster, cfg.SentinelAddrs = "dnsentinel", []string{"10.0.0.1:26379", "10.0.0.2:26379"}
	cfg.SentinelUser, cfg.SentinelPassword = "sentinel-user", "sentinel-pw"
	s := newRedisStore(cfg, t.Logf)
	o := s.opt
	if !slices.Equal(o.InitAddress, cfg.SentinelAddrs) || o.Sentinel.MasterSet != "dnsentinel" ||
		o.Sentinel.Username != "sentinel-user" || o.Sentinel.Password != "sentinel-pw" ||
		o.Sentinel.TLSConfig != cfg.RedisTLS || o.TLSConfig != cfg.RedisTLS || o.Sentinel.TopologyRefreshInterval <= 0 ||
		o.Sentinel.Dialer.Timeout <= 0 || o.Username != "coredns" || o.Password != "data-pw" || !o.DisableRetry {
		t.Errorf("sentinel option: %+v", o)
	}
	if want := "master dnsentinel via sentinels 10.0.0.1:26379,10.0.0.2:26379"; s.where != want {
		t.Errorf("where %q; want %q", s.where, want)
	}
}
