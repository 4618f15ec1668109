package contract

// The words of the contract that the plugin reads, writes or counts. verdict_cache/vocabulary.py
// defines them; this file follows it, word for word and in its order, and TestVectorVocabulary
// checks each list below against the "vocabulary" section of verdict_cache/vectors.json
// (generated from vocabulary.py), so a word renamed or added there fails `go test ./...` until
// it is changed here. The rest of the Go code spells none of these strings itself.
//
// The lists are arrays so that their lengths are constants (the plugin sizes its per-query
// metric tables with them); nothing may assign to them.

// Decisions (SPEC §1.4): a vetted action, else a verdict label, else unknown.
const (
	// Vetted actions (vocabulary.VETTED_ACTIONS): what an analyst can put on a name.
	DecisionAllow    = "allow"
	DecisionBlock    = "block"
	DecisionHoneypot = "honeypot"
	// Verdict labels (vocabulary.VERDICT_LABELS): what a model verdict in Redis says.
	DecisionMalicious = "malicious"
	DecisionUncertain = "uncertain"
	DecisionBenign    = "benign"
	// Neither a vetted entry nor a verdict (nor a lookup that completed).
	DecisionUnknown = "unknown"
)

// Excluded is the decision label of the queries_total metric for a query the plugin did not
// look up (an `exclude` zone); never in an event (vocabulary.EXCLUDED).
const Excluded = "excluded"

// Actions (vocabulary.ACTIONS, SPEC §2.2): what the plugin did with a query, the event
// `action` and the values of the Corefile's `action` option.
const (
	ActionPass     = "pass"
	ActionNXDomain = "nxdomain"
	ActionNoData   = "nodata"
	ActionRefused  = "refused"
	ActionNull     = "null"
	ActionSinkhole = "sinkhole"
	ActionHoneypot = "honeypot"
)

// Event sources (vocabulary.SOURCES): the plugin's events are live.
const (
	SourceLive    = "live"
	SourceReplay  = "replay"
	SourceLoadgen = "loadgen"
)

// Event transports (vocabulary.PROTOS), as CoreDNS's request.Proto spells them.
const (
	ProtoUDP = "udp"
	ProtoTCP = "tcp"
)

// The word lists, in vocabulary.py's order.
var (
	VettedActions     = [...]string{DecisionAllow, DecisionBlock, DecisionHoneypot}
	VerdictLabels     = [...]string{DecisionMalicious, DecisionUncertain, DecisionBenign}
	Decisions         = [...]string{DecisionAllow, DecisionBlock, DecisionHoneypot, DecisionMalicious, DecisionUncertain, DecisionBenign, DecisionUnknown}
	BlockingDecisions = [...]string{DecisionBlock, DecisionHoneypot, DecisionMalicious}
	MetricDecisions   = [...]string{DecisionAllow, DecisionBlock, DecisionHoneypot, DecisionMalicious, DecisionUncertain, DecisionBenign, DecisionUnknown, Excluded}
	Actions           = [...]string{ActionPass, ActionNXDomain, ActionNoData, ActionRefused, ActionNull, ActionSinkhole, ActionHoneypot}
	BlockingActions   = [...]string{ActionNXDomain, ActionNoData, ActionRefused, ActionNull, ActionSinkhole, ActionHoneypot}
	Sources           = [...]string{SourceLive, SourceReplay, SourceLoadgen}
	Protos            = [...]string{ProtoUDP, ProtoTCP}
)
