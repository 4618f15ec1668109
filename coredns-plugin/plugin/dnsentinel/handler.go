// Package dnsentinel is a CoreDNS plugin that answers names with a malicious verdict or a
// vetted block from the dnsentinel Redis verdict cache and emits one event per query to Kafka.
package dnsentinel

import (
	"context"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"
)

// Handler is the dnsentinel plugin.
type Handler struct {
	Next plugin.Handler
}

// ServeDNS implements plugin.Handler.
func (h *Handler) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	return plugin.NextOrFailure(h.Name(), h.Next, ctx, w, r)
}

// Name implements plugin.Handler.
func (h *Handler) Name() string { return pluginName }
