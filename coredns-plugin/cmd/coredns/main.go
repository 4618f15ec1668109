// Command coredns builds CoreDNS with the in-tree plugins a recursive-forwarding resolver
// needs plus the dnsentinel plugin, which runs before cache and forward so that blocked
// names never reach an upstream and never sit in the answer cache.
package main

import (
	"slices"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/acl"
	_ "github.com/coredns/coredns/plugin/any"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/bufsize"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/cancel"
	_ "github.com/coredns/coredns/plugin/chaos"
	_ "github.com/coredns/coredns/plugin/debug"
	_ "github.com/coredns/coredns/plugin/dnstap"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/hosts"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metadata"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/minimal"
	_ "github.com/coredns/coredns/plugin/pprof"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/rewrite"
	_ "github.com/coredns/coredns/plugin/root"
	_ "github.com/coredns/coredns/plugin/template"
	_ "github.com/coredns/coredns/plugin/timeouts"
	_ "github.com/coredns/coredns/plugin/whoami"

	_ "github.com/dnsentinel/coredns-plugin/plugin/dnsentinel"
)

// init places dnsentinel right before cache in the execution order (and so before forward);
// the directive list is the order plugins run in, whatever order the Corefile uses.
func init() {
	dnsserver.Directives = insertBefore(dnsserver.Directives, "cache", "dnsentinel")
}

// insertBefore returns dirs with name inserted before anchor (appended if anchor is absent).
func insertBefore(dirs []string, anchor, name string) []string {
	if slices.Contains(dirs, name) {
		return dirs
	}
	i := slices.Index(dirs, anchor)
	if i < 0 {
		return append(dirs, name)
	}
	return slices.Insert(dirs, i, name)
}

func main() { coremain.Run() }
