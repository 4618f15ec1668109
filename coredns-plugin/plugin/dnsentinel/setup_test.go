package dnsentinel

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"

	"github.com/dnsentinel/coredns-plugin/contract"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string // substring of the error; "" = must parse
		check   func(t *testing.T, c Config)
	}{
		{"defaults", "dnsentinel", "", func(t *testing.T, c Config) {
			if c.RedisAddr != "127.0.0.1:6379" || c.RedisTimeout != 5*time.Millisecond || c.Action != contract.ActionNXDomain ||
				c.BlockedTTL != 60 || c.Topic != "dns.queries" || c.FailClosed || c.ReadyAlways || c.RedisPrefix != "dnsentinel" {
				t.Errorf("defaults: %+v", c)
			}
		}},
		{"zones", "dnsentinel example.org example.net", "", func(t *testing.T, c Config) {
			if len(c.Zones) != 2 || c.Zones[0] != "example.org." {
				t.Errorf("zones %v", c.Zones)
			}
		}},
		{"everything", `dnsentinel {
			redis 10.0.0.1:6380
			redis_username u
			redis_password p
			redis_db 2
			redis_prefix test-1
			redis_timeout 3ms
			kafka 10.0.0.2:9092 10.0.0.3:9092
			kafka_sasl SCRAM-SHA-512 user pass
			topic q
			kafka_buffer 500
			action sinkhole 192.0.2.1 2001:db8::1
			honeypot 192.0.2.53
			blocked_ttl 30
			cache_size 1000
			cache_ttl 10s
			no_block 10.0.0.0/8 192.0.2.7
			exclude corp.example
			fail closed
			ready always
			server_id dns-1
			fallthrough example.com
		}`, "", func(t *testing.T, c Config) {
			if c.RedisAddr != "10.0.0.1:6380" || c.RedisUser != "u" || c.RedisPassword != "p" || c.RedisDB != 2 ||
				c.RedisPrefix != "test-1" || c.RedisTimeout != 3*time.Millisecond || len(c.Brokers) != 2 ||
				c.KafkaSASL[0] != "scram-sha-512" || c.Topic != "q" || c.KafkaBuffer != 500 ||
				c.Action != contract.ActionSinkhole || len(c.SinkholeV4) != 1 || len(c.SinkholeV6) != 1 || len(c.HoneypotV4) != 1 ||
				c.BlockedTTL != 30 || c.CacheSize != 1000 || c.CacheTTL != 10*time.Second || len(c.NoBlock) != 2 ||
				c.NoBlock[1].String() != "192.0.2.7/32" || c.Exclude[0] != "corp.example." || !c.FailClosed ||
				!c.ReadyAlways || c.ServerID != "dns-1" || !c.Fall.Through("a.example.com.") || c.Fall.Through("a.example.org.") {
				t.Errorf("parsed: %+v", c)
			}
		}},
		{"null action, no events", "dnsentinel {\naction null\nno_events\n}", "", func(t *testing.T, c Config) {
			if c.Action != contract.ActionNull || !c.NoEvents {
				t.Errorf("action %s, no_events %v", c.Action, c.NoEvents)
			}
		}},
		{"sentinel", `dnsentinel {
			redis_sentinel dnsentinel 10.0.0.1:26379 10.0.0.2:26379 [2001:db8::3]:26379
			redis_sentinel_auth sentinel-user s3cret
			redis_username coredns
			redis_password p
		}`, "", func(t *testing.T, c Config) {
			if c.SentinelMaster != "dnsentinel" || !slices.Equal(c.SentinelAddrs, []string{"10.0.0.1:26379", "10.0.0.2:26379", "[2001:db8::3]:26379"}) ||
				c.SentinelUser != "sentinel-user" || c.SentinelPassword != "s3cret" || c.RedisUser != "coredns" || c.RedisPassword != "p" {
				t.Errorf("sentinel: %+v", c)
			}
		}},
		{"sentinel password only", "dnsentinel {\nredis_sentinel m 127.0.0.1:26379\nredis_sentinel_auth pw\n}", "", func(t *testing.T, c Config) {
			if c.SentinelUser != "" || c.SentinelPassword != "pw" || len(c.SentinelAddrs) != 1 {
				t.Errorf("sentinel auth: %+v", c)
			}
		}},
		{"redis and sentinel", "dnsentinel {\nredis 127.0.0.1:6379\nredis_sentinel m 127.0.0.1:26379\n}", "redis and redis_sentinel exclude each other", nil},
		{"sentinel auth alone", "dnsentinel {\nredis_sentinel_auth u p\n}", "redis_sentinel_auth needs redis_sentinel", nil},
		{"twice", "dnsentinel\ndnsentinel", "plugin", nil},
		{"line number", "dnsentinel {\nredis 127.0.0.1:6379\n\nblocked_ttl x\n}", "Testfile:4", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := caddy.NewTestController("dns", tc.input)
			cfg, err := parse(c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parse(%q) error = %v; want it to contain %q", tc.input, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse(%q): %v", tc.input, err)
			}
			tc.check(t, cfg)
		})
	}
}

// TestParseOptionErrors pins the message of each way an option line can be wrong.
func TestParseOptionErrors(t *testing.T) {
	tests := []struct{ option, msg string }{
		{"foo bar", `unknown option "foo"`},
		{"redis a:1 b:2", "redis takes exactly one argument, got 2"},
		{"redis localhost", `redis "localhost" is not host:port`},
		{"redis localhost:99999", `redis "localhost:99999": port "99999" is not 1-65535`},
		{"redis_db 16", `redis_db "16" is not an integer in 0..15`},
		{"redis_prefix \"a b\"", `redis_prefix "a b" must be non-empty without spaces`},
		{"redis_timeout 5", `redis_timeout "5" is not a duration in 100µs..10s`},
		{"redis_timeout 1m", `redis_timeout "1m" is not a duration in 100µs..10s`},
		{"redis_tls a b c d", "redis_tls takes at most CERT KEY CA, got 4 arguments"},
		{"redis_sentinel m", "redis_sentinel takes MASTER ADDR [ADDR...], got 1 arguments"},
		{"redis_sentinel 10.0.0.1:26379 10.0.0.2:26379", `redis_sentinel: the first argument is the master name, got the address "10.0.0.1:26379"`},
		{"redis_sentinel m 10.0.0.1:26379 sentinel-2", `redis_sentinel "sentinel-2" is not host:port`},
		{"redis_sentinel m 10.0.0.1:0", `redis_sentinel "10.0.0.1:0": port "0" is not 1-65535`},
		{"redis_sentinel_auth", "redis_sentinel_auth takes [USER] PASSWORD, got 0 arguments"},
		{"redis_sentinel_auth a b c", "redis_sentinel_auth takes [USER] PASSWORD, got 3 arguments"},
		{"kafka", "kafka needs at least one broker host:port"},
		{"kafka a:1 b", `kafka "b" is not host:port`},
		{"kafka_sasl gssapi a b", `kafka_sasl mechanism "gssapi" is not plain, scram-sha-256 or scram-sha-512`},
		{"kafka_sasl plain a", "kafka_sasl takes MECHANISM USER PASSWORD, got 2 arguments"},
		{"topic", "topic takes exactly one argument, got 0"},
		{"no_events x", "no_events takes no arguments"},
		{"action", "action needs one of nxdomain, nodata, refused, null, sinkhole IP..."},
		{"action drop", `action "drop" is not nxdomain, nodata, refused, null or sinkhole`},
		{"action honeypot", `action "honeypot" is not nxdomain, nodata, refused, null or sinkhole`},
		{"action nxdomain 1.2.3.4", "action nxdomain takes no addresses"},
		{"action sinkhole", "action sinkhole needs at least one IP address"},
		{"action sinkhole 1.2.3", `action sinkhole: "1.2.3" is not an IP address`},
		{"honeypot", "honeypot needs at least one IP address"},
		{"blocked_ttl -1", `blocked_ttl "-1" is not an integer in 0..86400`},
		{"cache_size 0", `cache_size "0" is not an integer in 1..100000000`},
		{"cache_ttl 25h", `cache_ttl "25h" is not a duration in 1ms..24h0m0s`},
		{"no_block 10.0.0.0/33", `no_block "10.0.0.0/33" is not a CIDR or IP address`},
		{"exclude", "exclude needs at least one zone"},
		{"fail maybe", `fail "maybe" is not open or closed`},
		{"ready soon", `ready "soon" is not redis or always`},
		{"server_id a b", "server_id takes exactly one argument, got 2"},
	}
	for _, tc := range tests {
		t.Run(tc.option, func(t *testing.T) {
			_, err := parse(caddy.NewTestController("dns", "dnsentinel {\n"+tc.option+"\n}"))
			if want := "Testfile:2 - Error during parsing: " + tc.msg; err == nil || err.Error() != want {
				t.Fatalf("parse error = %v; want %s", err, want)
			}
		})
	}
	_, err := parse(caddy.NewTestController("dns", "dnsentinel {\nredis_tls /nonexistent/c /nonexistent/k\n}"))
	if err == nil || !strings.Contains(err.Error(), "redis_tls: ") {
		t.Errorf("missing TLS files: error %v; want one naming redis_tls", err)
	}
}

// TestOptionsDocumented: the README's Syntax block lists exactly the options parsed.
func TestOptionsDocumented(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, syntax, _ := strings.Cut(string(readme), "dnsentinel [ZONES...] {\n")
	syntax, _, _ = strings.Cut(syntax, "\n}")
	var documented []string
	for _, line := range strings.Split(syntax, "\n") {
		documented = append(documented, strings.Fields(line)[0])
	}
	parsed := slices.Sorted(maps.Keys(options))
	slices.Sort(documented)
	if !slices.Equal(documented, parsed) {
		t.Errorf("README Syntax lists %v; the parser knows %v", documented, parsed)
	}
}

func TestSetupRegistersHandler(t *testing.T) {
	c := caddy.NewTestController("dns", "dnsentinel {\nno_events\n}")
	if err := setup(c); err != nil {
		t.Fatalf("setup: %v", err)
	}
	c = caddy.NewTestController("dns", "dnsentinel {\naction\n}")
	if err := setup(c); err == nil || !strings.Contains(err.Error(), "plugin/dnsentinel") {
		t.Fatalf("setup error %v; want one naming the plugin", err)
	}
}
