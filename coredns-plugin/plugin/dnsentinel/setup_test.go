package dnsentinel

import (
	"strings"
	"testing"
	"time"

	"github.com/coredns/caddy"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		wantErr string // substring of the error; "" = must parse
		check   func(t *testing.T, c Config)
	}{
		{"defaults", "dnsentinel", "", func(t *testing.T, c Config) {
			if c.RedisAddr != "127.0.0.1:6379" || c.RedisTimeout != 5*time.Millisecond || c.Action != ActionNXDomain ||
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
				c.Action != ActionSinkhole || len(c.SinkholeV4) != 1 || len(c.SinkholeV6) != 1 || len(c.HoneypotV4) != 1 ||
				c.BlockedTTL != 30 || c.CacheSize != 1000 || c.CacheTTL != 10*time.Second || len(c.NoBlock) != 2 ||
				c.NoBlock[1].String() != "192.0.2.7/32" || c.Exclude[0] != "corp.example." || !c.FailClosed ||
				!c.ReadyAlways || c.ServerID != "dns-1" || !c.Fall.Through("a.example.com.") || c.Fall.Through("a.example.org.") {
				t.Errorf("parsed: %+v", c)
			}
		}},
		{"actions", "dnsentinel {\naction null\n}", "", func(t *testing.T, c Config) {
			if c.Action != ActionNull {
				t.Errorf("action %s", c.Action)
			}
		}},
		{"no events", "dnsentinel {\nno_events\n}", "", func(t *testing.T, c Config) {
			if !c.NoEvents {
				t.Error("no_events not set")
			}
		}},
		{"unknown option", "dnsentinel {\nfoo bar\n}", `Testfile:2 - Error during parsing: unknown option "foo"`, nil},
		{"bad action", "dnsentinel {\naction drop\n}", `action "drop" is not`, nil},
		{"sinkhole without ip", "dnsentinel {\naction sinkhole\n}", "sinkhole needs at least one IP", nil},
		{"sinkhole bad ip", "dnsentinel {\naction sinkhole 1.2.3\n}", `"1.2.3" is not an IP address`, nil},
		{"nxdomain with ip", "dnsentinel {\naction nxdomain 1.2.3.4\n}", "takes no addresses", nil},
		{"redis no port", "dnsentinel {\nredis localhost\n}", "is not host:port", nil},
		{"redis bad port", "dnsentinel {\nredis localhost:99999\n}", "is not 1-65535", nil},
		{"redis two args", "dnsentinel {\nredis a:1 b:2\n}", "exactly one argument", nil},
		{"timeout unit", "dnsentinel {\nredis_timeout 5\n}", "is not a duration", nil},
		{"timeout too long", "dnsentinel {\nredis_timeout 1m\n}", "is not a duration", nil},
		{"ttl negative", "dnsentinel {\nblocked_ttl -1\n}", "is not an integer in 0..86400", nil},
		{"cache size zero", "dnsentinel {\ncache_size 0\n}", "is not an integer", nil},
		{"bad cidr", "dnsentinel {\nno_block 10.0.0.0/33\n}", "is not a CIDR", nil},
		{"fail maybe", "dnsentinel {\nfail maybe\n}", `fail "maybe" is not open or closed`, nil},
		{"ready bad", "dnsentinel {\nready soon\n}", "is not redis or always", nil},
		{"sasl mech", "dnsentinel {\nkafka_sasl gssapi a b\n}", "is not plain", nil},
		{"sasl args", "dnsentinel {\nkafka_sasl plain a\n}", "MECHANISM USER PASSWORD", nil},
		{"kafka empty", "dnsentinel {\nkafka\n}", "at least one broker", nil},
		{"tls missing files", "dnsentinel {\nredis_tls /nonexistent/c /nonexistent/k\n}", "redis_tls", nil},
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
