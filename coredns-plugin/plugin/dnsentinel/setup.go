package dnsentinel

import (
	"crypto/tls"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	pkgtls "github.com/coredns/coredns/plugin/pkg/tls"
)

const pluginName = "dnsentinel"

func init() { plugin.Register(pluginName, setup) }

func setup(c *caddy.Controller) error {
	cfg, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	h := newHandler(cfg)
	c.OnStartup(h.start)
	c.OnShutdown(h.stop)
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		h.Next = next
		return h
	})
	return nil
}

// parse reads one dnsentinel block; every error names the Corefile line (c.Errf/ArgErr).
func parse(c *caddy.Controller) (Config, error) {
	cfg := defaultConfig()
	blocks := 0
	for c.Next() {
		if blocks++; blocks > 1 {
			return cfg, plugin.ErrOnce
		}
		cfg.Zones = plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
		for c.NextBlock() {
			if err := parseOption(c, &cfg); err != nil {
				return cfg, err
			}
		}
	}
	if cfg.ServerID == "" {
		cfg.ServerID, _ = os.Hostname()
	}
	if cfg.Action == ActionSinkhole && len(cfg.SinkholeV4)+len(cfg.SinkholeV6) == 0 {
		return cfg, c.Err("action sinkhole needs at least one IP address")
	}
	return cfg, nil
}

func parseOption(c *caddy.Controller, cfg *Config) error {
	opt := c.Val()
	args := c.RemainingArgs()
	one := func() (string, error) {
		if len(args) != 1 {
			return "", c.Errf("%s takes exactly one argument, got %d", opt, len(args))
		}
		return args[0], nil
	}
	var err error
	var v string
	switch opt {
	case "redis":
		if v, err = one(); err == nil {
			cfg.RedisAddr, err = hostPort(c, opt, v)
		}
	case "redis_username":
		cfg.RedisUser, err = one()
	case "redis_password":
		cfg.RedisPassword, err = one()
	case "redis_db":
		if v, err = one(); err == nil {
			cfg.RedisDB, err = intIn(c, opt, v, 0, 15)
		}
	case "redis_tls":
		cfg.RedisTLS, err = tlsConfig(c, opt, args)
	case "redis_prefix":
		if v, err = one(); err == nil {
			if v == "" || strings.ContainsAny(v, " \t") {
				return c.Errf("redis_prefix %q must be non-empty without spaces", v)
			}
			cfg.RedisPrefix = v
		}
	case "redis_timeout":
		if v, err = one(); err == nil {
			cfg.RedisTimeout, err = duration(c, opt, v, 100*time.Microsecond, 10*time.Second)
		}
	case "kafka":
		if len(args) == 0 {
			return c.Errf("kafka needs at least one broker host:port")
		}
		cfg.Brokers = nil
		for _, a := range args {
			hp, err := hostPort(c, opt, a)
			if err != nil {
				return err
			}
			cfg.Brokers = append(cfg.Brokers, hp)
		}
	case "kafka_sasl":
		if len(args) != 3 {
			return c.Errf("kafka_sasl takes MECHANISM USER PASSWORD, got %d arguments", len(args))
		}
		switch strings.ToLower(args[0]) {
		case "plain", "scram-sha-256", "scram-sha-512":
		default:
			return c.Errf("kafka_sasl mechanism %q is not plain, scram-sha-256 or scram-sha-512", args[0])
		}
		cfg.KafkaSASL = []string{strings.ToLower(args[0]), args[1], args[2]}
	case "kafka_tls":
		cfg.KafkaTLS, err = tlsConfig(c, opt, args)
	case "topic":
		if v, err = one(); err == nil {
			cfg.Topic = v
		}
	case "kafka_buffer":
		if v, err = one(); err == nil {
			cfg.KafkaBuffer, err = intIn(c, opt, v, 1, 100_000_000)
		}
	case "no_events":
		if len(args) != 0 {
			return c.Errf("no_events takes no arguments")
		}
		cfg.NoEvents = true
	case "action":
		err = parseAction(c, cfg, args)
	case "honeypot":
		if len(args) == 0 {
			return c.Errf("honeypot needs at least one IP address")
		}
		cfg.HoneypotV4, cfg.HoneypotV6, err = ips(c, opt, args)
	case "blocked_ttl":
		if v, err = one(); err == nil {
			var n int
			n, err = intIn(c, opt, v, 0, 86400)
			cfg.BlockedTTL = uint32(n)
		}
	case "cache_size":
		if v, err = one(); err == nil {
			cfg.CacheSize, err = intIn(c, opt, v, 1, 100_000_000)
		}
	case "cache_ttl":
		if v, err = one(); err == nil {
			cfg.CacheTTL, err = duration(c, opt, v, time.Millisecond, 24*time.Hour)
		}
	case "no_block":
		if len(args) == 0 {
			return c.Errf("no_block needs at least one CIDR")
		}
		for _, a := range args {
			p, perr := netip.ParsePrefix(a)
			if perr != nil {
				addr, aerr := netip.ParseAddr(a)
				if aerr != nil {
					return c.Errf("no_block %q is not a CIDR or IP address", a)
				}
				p = netip.PrefixFrom(addr, addr.BitLen())
			}
			cfg.NoBlock = append(cfg.NoBlock, p.Masked())
		}
	case "exclude":
		if len(args) == 0 {
			return c.Errf("exclude needs at least one zone")
		}
		cfg.Exclude = append(cfg.Exclude, plugin.OriginsFromArgsOrServerBlock(args, nil)...)
	case "fail":
		if v, err = one(); err == nil {
			switch v {
			case "open":
				cfg.FailClosed = false
			case "closed":
				cfg.FailClosed = true
			default:
				return c.Errf("fail %q is not open or closed", v)
			}
		}
	case "ready":
		if v, err = one(); err == nil {
			switch v {
			case "redis":
				cfg.ReadyAlways = false
			case "always":
				cfg.ReadyAlways = true
			default:
				return c.Errf("ready %q is not redis or always", v)
			}
		}
	case "server_id":
		cfg.ServerID, err = one()
	case "fallthrough":
		cfg.Fall.SetZonesFromArgs(args)
	default:
		return c.Errf("unknown option %q", opt)
	}
	return err
}

func parseAction(c *caddy.Controller, cfg *Config, args []string) error {
	if len(args) == 0 {
		return c.Errf("action needs one of nxdomain, nodata, refused, null, sinkhole IP...")
	}
	switch a := args[0]; a {
	case ActionNXDomain, ActionNoData, ActionRefused, ActionNull:
		if len(args) != 1 {
			return c.Errf("action %s takes no addresses", a)
		}
		cfg.Action = a
	case ActionSinkhole:
		if len(args) < 2 {
			return c.Errf("action sinkhole needs at least one IP address")
		}
		v4, v6, err := ips(c, "action sinkhole", args[1:])
		if err != nil {
			return err
		}
		cfg.Action, cfg.SinkholeV4, cfg.SinkholeV6 = a, v4, v6
	default:
		return c.Errf("action %q is not nxdomain, nodata, refused, null or sinkhole", a)
	}
	return nil
}

func ips(c *caddy.Controller, opt string, args []string) (v4, v6 []net.IP, err error) {
	for _, a := range args {
		ip := net.ParseIP(a)
		if ip == nil {
			return nil, nil, c.Errf("%s: %q is not an IP address", opt, a)
		}
		if ip4 := ip.To4(); ip4 != nil {
			v4 = append(v4, ip4)
		} else {
			v6 = append(v6, ip)
		}
	}
	return v4, v6, nil
}

func hostPort(c *caddy.Controller, opt, v string) (string, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" {
		return "", c.Errf("%s %q is not host:port", opt, v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", c.Errf("%s %q: port %q is not 1-65535", opt, v, port)
	}
	return v, nil
}

func intIn(c *caddy.Controller, opt, v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, c.Errf("%s %q is not an integer in %d..%d", opt, v, lo, hi)
	}
	return n, nil
}

func duration(c *caddy.Controller, opt, v string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, c.Errf("%s %q is not a duration in %s..%s", opt, v, lo, hi)
	}
	return d, nil
}

// tlsConfig follows CoreDNS's convention (plugin/forward's tls): no arguments = system
// roots; CA = those roots; CERT KEY = a client certificate; CERT KEY CA = both.
func tlsConfig(c *caddy.Controller, opt string, args []string) (*tls.Config, error) {
	if len(args) > 3 {
		return nil, c.Errf("%s takes at most CERT KEY CA, got %d arguments", opt, len(args))
	}
	cfg, err := pkgtls.NewTLSConfigFromArgs(args...)
	if err != nil {
		return nil, c.Errf("%s: %v", opt, err)
	}
	return cfg, nil
}
