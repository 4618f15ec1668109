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

	"github.com/dnsentinel/coredns-plugin/contract"
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
	seen := map[string]bool{}
	blocks := 0
	for c.Next() {
		if blocks++; blocks > 1 {
			return cfg, plugin.ErrOnce
		}
		cfg.Zones = plugin.OriginsFromArgsOrServerBlock(c.RemainingArgs(), c.ServerBlockKeys)
		for c.NextBlock() {
			seen[c.Val()] = true
			if err := parseOption(c, &cfg); err != nil {
				return cfg, err
			}
		}
	}
	if cfg.ServerID == "" {
		cfg.ServerID, _ = os.Hostname()
	}
	if seen["redis"] && seen["redis_sentinel"] {
		return cfg, c.Err("redis and redis_sentinel exclude each other: with Sentinels, the master's address comes from them")
	}
	if seen["redis_sentinel_auth"] && !seen["redis_sentinel"] {
		return cfg, c.Err("redis_sentinel_auth needs redis_sentinel")
	}
	if cfg.Action == contract.ActionSinkhole && len(cfg.SinkholeV4)+len(cfg.SinkholeV6) == 0 {
		return cfg, c.Err("action sinkhole needs at least one IP address")
	}
	return cfg, nil
}

func parseOption(c *caddy.Controller, cfg *Config) error {
	opt := c.Val()
	args := c.RemainingArgs()
	parseArgs, ok := options[opt]
	if !ok {
		return c.Errf("unknown option %q", opt)
	}
	return parseArgs(c, cfg, opt, args)
}

// optionParser reads the arguments of one option into cfg; opt is the option's name.
type optionParser func(c *caddy.Controller, cfg *Config, opt string, args []string) error

// options is the syntax of the block (README.md, Syntax), one parser per option.
var options = map[string]optionParser{
	"redis":               oneArg(func(cfg *Config) *string { return &cfg.RedisAddr }, hostPort),
	"redis_username":      oneArg(func(cfg *Config) *string { return &cfg.RedisUser }, anyText),
	"redis_password":      oneArg(func(cfg *Config) *string { return &cfg.RedisPassword }, anyText),
	"redis_db":            oneArg(func(cfg *Config) *int { return &cfg.RedisDB }, intIn(0, 15)),
	"redis_tls":           tlsOption(func(cfg *Config) **tls.Config { return &cfg.RedisTLS }),
	"redis_prefix":        oneArg(func(cfg *Config) *string { return &cfg.RedisPrefix }, keyPrefix),
	"redis_timeout":       oneArg(func(cfg *Config) *time.Duration { return &cfg.RedisTimeout }, durationIn(100*time.Microsecond, 10*time.Second)),
	"redis_sentinel":      parseSentinel,
	"redis_sentinel_auth": parseSentinelAuth,
	"kafka":               parseKafka,
	"kafka_sasl":          parseKafkaSASL,
	"kafka_tls":           tlsOption(func(cfg *Config) **tls.Config { return &cfg.KafkaTLS }),
	"topic":               oneArg(func(cfg *Config) *string { return &cfg.Topic }, anyText),
	"kafka_buffer":        oneArg(func(cfg *Config) *int { return &cfg.KafkaBuffer }, intIn(1, 100_000_000)),
	"no_events":           parseNoEvents,
	"action":              parseAction,
	"honeypot":            parseHoneypot,
	"blocked_ttl":         oneArg(func(cfg *Config) *uint32 { return &cfg.BlockedTTL }, ttl),
	"cache_size":          oneArg(func(cfg *Config) *int { return &cfg.CacheSize }, intIn(1, 100_000_000)),
	"cache_ttl":           oneArg(func(cfg *Config) *time.Duration { return &cfg.CacheTTL }, durationIn(time.Millisecond, 24*time.Hour)),
	"no_block":            parseNoBlock,
	"exclude":             parseExclude,
	"fail":                oneArg(func(cfg *Config) *bool { return &cfg.FailClosed }, either("open", "closed")),
	"ready":               oneArg(func(cfg *Config) *bool { return &cfg.ReadyAlways }, either("redis", "always")),
	"server_id":           oneArg(func(cfg *Config) *string { return &cfg.ServerID }, anyText),
	"fallthrough": func(_ *caddy.Controller, cfg *Config, _ string, args []string) error {
		cfg.Fall.SetZonesFromArgs(args)
		return nil
	},
}

// valueParser checks and converts the one argument v of option opt.
type valueParser[T any] func(c *caddy.Controller, opt, v string) (T, error)

// oneArg is the parser of an option with exactly one argument, stored in *field(cfg).
func oneArg[T any](field func(*Config) *T, value valueParser[T]) optionParser {
	return func(c *caddy.Controller, cfg *Config, opt string, args []string) error {
		if len(args) != 1 {
			return c.Errf("%s takes exactly one argument, got %d", opt, len(args))
		}
		v, err := value(c, opt, args[0])
		if err != nil {
			return err
		}
		*field(cfg) = v
		return nil
	}
}

func anyText(_ *caddy.Controller, _, v string) (string, error) { return v, nil }

func keyPrefix(c *caddy.Controller, opt, v string) (string, error) {
	if v == "" || strings.ContainsAny(v, " \t") {
		return "", c.Errf("%s %q must be non-empty without spaces", opt, v)
	}
	return v, nil
}

func ttl(c *caddy.Controller, opt, v string) (uint32, error) {
	n, err := intIn(0, 86400)(c, opt, v)
	return uint32(n), err
}

// either reads a two-way switch: no is false, yes is true.
func either(no, yes string) valueParser[bool] {
	return func(c *caddy.Controller, opt, v string) (bool, error) {
		if v != no && v != yes {
			return false, c.Errf("%s %q is not %s or %s", opt, v, no, yes)
		}
		return v == yes, nil
	}
}

func tlsOption(field func(*Config) **tls.Config) optionParser {
	return func(c *caddy.Controller, cfg *Config, opt string, args []string) (err error) {
		*field(cfg), err = tlsConfig(c, opt, args)
		return err
	}
}

func parseKafka(c *caddy.Controller, cfg *Config, opt string, args []string) error {
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
	return nil
}

func parseKafkaSASL(c *caddy.Controller, cfg *Config, _ string, args []string) error {
	if len(args) != 3 {
		return c.Errf("kafka_sasl takes MECHANISM USER PASSWORD, got %d arguments", len(args))
	}
	switch strings.ToLower(args[0]) {
	case "plain", "scram-sha-256", "scram-sha-512":
	default:
		return c.Errf("kafka_sasl mechanism %q is not plain, scram-sha-256 or scram-sha-512", args[0])
	}
	cfg.KafkaSASL = []string{strings.ToLower(args[0]), args[1], args[2]}
	return nil
}

// parseSentinel reads `redis_sentinel MASTER ADDR...`: the master name the Sentinels monitor
// and at least one Sentinel; the plugin then connects wherever they say the master is.
func parseSentinel(c *caddy.Controller, cfg *Config, opt string, args []string) error {
	if len(args) < 2 {
		return c.Errf("%s takes MASTER ADDR [ADDR...], got %d arguments", opt, len(args))
	}
	if strings.Contains(args[0], ":") {
		return c.Errf("%s: the first argument is the master name, got the address %q", opt, args[0])
	}
	addrs := make([]string, 0, len(args)-1)
	for _, a := range args[1:] {
		hp, err := hostPort(c, opt, a)
		if err != nil {
			return err
		}
		addrs = append(addrs, hp)
	}
	cfg.SentinelMaster, cfg.SentinelAddrs = args[0], addrs
	return nil
}

// parseSentinelAuth reads `redis_sentinel_auth [USER] PASSWORD`: the Sentinels' own ACL
// user (redis_username and redis_password are the data servers').
func parseSentinelAuth(c *caddy.Controller, cfg *Config, opt string, args []string) error {
	switch len(args) {
	case 1:
		cfg.SentinelUser, cfg.SentinelPassword = "", args[0]
	case 2:
		cfg.SentinelUser, cfg.SentinelPassword = args[0], args[1]
	default:
		return c.Errf("%s takes [USER] PASSWORD, got %d arguments", opt, len(args))
	}
	return nil
}

func parseNoEvents(c *caddy.Controller, cfg *Config, _ string, args []string) error {
	if len(args) != 0 {
		return c.Errf("no_events takes no arguments")
	}
	cfg.NoEvents = true
	return nil
}

// blockActions are the values of the action option, in the order its errors list them.
var blockActions = []string{contract.ActionNXDomain, contract.ActionNoData, contract.ActionRefused, contract.ActionNull, contract.ActionSinkhole}

func parseAction(c *caddy.Controller, cfg *Config, _ string, args []string) error {
	if len(args) == 0 {
		return c.Errf("action needs one of %s IP...", strings.Join(blockActions, ", "))
	}
	switch a := args[0]; a {
	case contract.ActionNXDomain, contract.ActionNoData, contract.ActionRefused, contract.ActionNull:
		if len(args) != 1 {
			return c.Errf("action %s takes no addresses", a)
		}
		cfg.Action = a
	case contract.ActionSinkhole:
		if len(args) < 2 {
			return c.Errf("action %s needs at least one IP address", a)
		}
		v4, v6, err := ips(c, "action "+a, args[1:])
		if err != nil {
			return err
		}
		cfg.Action, cfg.SinkholeV4, cfg.SinkholeV6 = a, v4, v6
	default:
		last := len(blockActions) - 1
		return c.Errf("action %q is not %s or %s", a, strings.Join(blockActions[:last], ", "), blockActions[last])
	}
	return nil
}

func parseHoneypot(c *caddy.Controller, cfg *Config, opt string, args []string) (err error) {
	if len(args) == 0 {
		return c.Errf("honeypot needs at least one IP address")
	}
	cfg.HoneypotV4, cfg.HoneypotV6, err = ips(c, opt, args)
	return err
}

func parseNoBlock(c *caddy.Controller, cfg *Config, _ string, args []string) error {
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
	return nil
}

func parseExclude(c *caddy.Controller, cfg *Config, _ string, args []string) error {
	if len(args) == 0 {
		return c.Errf("exclude needs at least one zone")
	}
	cfg.Exclude = append(cfg.Exclude, plugin.OriginsFromArgsOrServerBlock(args, nil)...)
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

func intIn(lo, hi int) valueParser[int] {
	return func(c *caddy.Controller, opt, v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return 0, c.Errf("%s %q is not an integer in %d..%d", opt, v, lo, hi)
		}
		return n, nil
	}
}

func durationIn(lo, hi time.Duration) valueParser[time.Duration] {
	return func(c *caddy.Controller, opt, v string) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil || d < lo || d > hi {
			return 0, c.Errf("%s %q is not a duration in %s..%s", opt, v, lo, hi)
		}
		return d, nil
	}
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
