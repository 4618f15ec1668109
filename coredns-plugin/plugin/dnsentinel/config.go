package dnsentinel

import (
	"crypto/tls"
	"net"
	"net/netip"
	"time"

	"github.com/coredns/coredns/plugin/pkg/fall"

	"github.com/dnsentinel/coredns-plugin/contract"
)

// Config is the parsed `dnsentinel` block; defaults are those of the local stack.
type Config struct {
	Zones []string

	RedisAddr     string
	RedisUser     string
	RedisPassword string
	RedisDB       int
	RedisTLS      *tls.Config
	RedisPrefix   string
	RedisTimeout  time.Duration

	// SentinelMaster and SentinelAddrs, when set, replace RedisAddr: the master is whichever
	// server the Sentinels name, followed across failovers. RedisTLS applies to both.
	SentinelMaster   string
	SentinelAddrs    []string
	SentinelUser     string
	SentinelPassword string

	Brokers     []string
	KafkaSASL   []string // mechanism, user, password
	KafkaTLS    *tls.Config
	Topic       string
	KafkaBuffer int
	NoEvents    bool

	Action     string // a contract.Action* other than pass and honeypot
	SinkholeV4 []net.IP
	SinkholeV6 []net.IP
	HoneypotV4 []net.IP
	HoneypotV6 []net.IP
	BlockedTTL uint32

	CacheSize int
	CacheTTL  time.Duration

	NoBlock     []netip.Prefix
	Exclude     []string
	FailClosed  bool
	ReadyAlways bool
	ServerID    string
	Fall        fall.F
}

func defaultConfig() Config {
	return Config{
		RedisAddr:    "127.0.0.1:6379",
		RedisPrefix:  "dnsentinel",
		RedisTimeout: 5 * time.Millisecond,
		Brokers:      []string{"127.0.0.1:9092"},
		Topic:        "dns.queries",
		KafkaBuffer:  100000,
		Action:       contract.ActionNXDomain,
		BlockedTTL:   60,
		CacheSize:    100000,
		CacheTTL:     30 * time.Second,
	}
}
