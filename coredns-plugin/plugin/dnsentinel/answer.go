package dnsentinel

import (
	"net"

	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"

	"github.com/dnsentinel/coredns-plugin/contract"
)

// blockAnswer builds the reply for a blocking decision and returns it with the event action.
func (h *Handler) blockAnswer(state request.Request, decision, reason string) (*dns.Msg, string) {
	action := h.cfg.Action
	v4, v6 := h.cfg.SinkholeV4, h.cfg.SinkholeV6
	if decision == contract.DecisionHoneypot && len(h.cfg.HoneypotV4)+len(h.cfg.HoneypotV6) > 0 {
		action, v4, v6 = contract.ActionHoneypot, h.cfg.HoneypotV4, h.cfg.HoneypotV6
	}
	m := new(dns.Msg)
	m.SetReply(state.Req)
	m.RecursionAvailable = true
	switch action {
	case contract.ActionNXDomain:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{h.soa(state)}
	case contract.ActionNoData:
		m.Ns = []dns.RR{h.soa(state)}
	case contract.ActionRefused:
		m.Rcode = dns.RcodeRefused
	case contract.ActionNull:
		h.addresses(m, state, []net.IP{net.IPv4zero.To4()}, []net.IP{net.IPv6zero})
	case contract.ActionSinkhole, contract.ActionHoneypot:
		h.addresses(m, state, v4, v6)
	}
	code := dns.ExtendedErrorCodeBlocked // an operator's decision (RFC 8914 §4.16)
	if decision == contract.DecisionMalicious {
		code = dns.ExtendedErrorCodeFiltered // the model's verdict (RFC 8914 §4.18)
	}
	addEDE(m, state, code, reason)
	return m, action
}

// addresses answers A and AAAA with the given addresses; other types (and a family without
// an address) get NODATA with the SOA so the negative answer is cached too.
func (h *Handler) addresses(m *dns.Msg, state request.Request, v4, v6 []net.IP) {
	hdr := dns.RR_Header{Name: state.QName(), Class: dns.ClassINET, Ttl: h.cfg.BlockedTTL}
	switch state.QType() {
	case dns.TypeA:
		hdr.Rrtype = dns.TypeA
		for _, ip := range v4 {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip})
		}
	case dns.TypeAAAA:
		hdr.Rrtype = dns.TypeAAAA
		for _, ip := range v6 {
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: ip})
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{h.soa(state)}
	}
}

// soa is a synthetic SOA for the negative answer; its minimum (and TTL) is blocked_ttl so
// clients cache the block exactly that long (RFC 2308).
func (h *Handler) soa(state request.Request) dns.RR {
	ttl := h.cfg.BlockedTTL
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: state.QName(), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      "dnsentinel.invalid.",
		Mbox:    "hostmaster.dnsentinel.invalid.",
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  ttl,
	}
}

// addEDE adds an Extended DNS Error when the client sent EDNS (RFC 8914 needs an OPT RR).
func addEDE(m *dns.Msg, state request.Request, code uint16, text string) {
	opt := state.Req.IsEdns0()
	if opt == nil {
		return
	}
	m.SetEdns0(max(opt.UDPSize(), dns.MinMsgSize), opt.Do())
	out := m.IsEdns0()
	out.Option = append(out.Option, &dns.EDNS0_EDE{InfoCode: code, ExtraText: text})
}
