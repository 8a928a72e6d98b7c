package relay

// Shelly Gen2+ (Plus, Pro, Gen3, Gen4) over MQTT, with the device's RPC
// channel (enable_rpc) and RPC status notifications (rpc_ntf) on, as they
// are by default:
//
//	<prefix>/rpc          requests: {"id":N,"src":S,"method":M,"params":{...}}   (we publish)
//	<S>/rpc               replies:  {"id":N,"src":<device>,"dst":S,"result":{...}} or "error":{code,message}
//	<prefix>/events/rpc   notifications: NotifyStatus (changed fields only),
//	                      NotifyFullStatus (everything), NotifyEvent
//	<prefix>/online       true | false (retained; the LWT)
//
// Switch.Set switches and answers once done; the relay then confirms the
// output with the state the device reports (a notification, or
// Switch.GetStatus). NotifyStatus carries only what changed ("apower"
// alone, say): it is merged onto the last full status, never taken for a
// full one.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ShellyGen2Config configures a Shelly Gen2+ relay. The device must have
// MQTT enabled with "RPC over MQTT" and "RPC status notifications" on (its
// defaults), and point at Broker.
type ShellyGen2Config struct {
	Broker
	// Prefix is the device's MQTT topic prefix (topic_prefix in its MQTT
	// settings), by default its id, e.g. shellyplus1pm-a8032ab636ec.
	Prefix string
	// SwitchID is the Switch component's id (switch:<SwitchID>): 0 on
	// single-output devices.
	SwitchID int
	// DeviceID, when set, is the device's id (the src of its frames, e.g.
	// shellyplus1pm-a8032ab636ec): replies and notifications from any
	// other src are dropped. Empty: not checked, for a prefix that only
	// this device uses.
	DeviceID string
	// ConfirmTimeout bounds Set: the device's reply and the state it
	// reports; 0 means DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
	// Log receives the relay's problems; nil discards them.
	Log *slog.Logger
}

// shellyGen2MaxSwitch bounds ShellyGen2Config.SwitchID: the largest
// devices have four outputs; a larger id is a typo.
const shellyGen2MaxSwitch = 255

// Validate checks the configuration; its messages name the field and say
// what to change. The constructor calls it.
func (cfg ShellyGen2Config) Validate() error {
	const vendor = "shelly gen2"
	if err := cfg.Broker.validate(vendor); err != nil {
		return err
	}
	if err := checkTopicPart(vendor, "Prefix", cfg.Prefix, "shellyplus1pm-a8032ab636ec", true); err != nil {
		return err
	}
	if cfg.DeviceID != "" {
		if err := checkTopicPart(vendor, "DeviceID", cfg.DeviceID, "shellyplus1pm-a8032ab636ec", false); err != nil {
			return err
		}
	}
	if cfg.SwitchID < 0 || cfg.SwitchID > shellyGen2MaxSwitch {
		return fmt.Errorf("relay: %s config: SwitchID %d: must be the Switch component's id, 0 to %d (0 on single-output devices)", vendor, cfg.SwitchID, shellyGen2MaxSwitch)
	}
	_, err := confirmTimeout(vendor, cfg.ConfirmTimeout)
	return err
}

// ShellyRPCError is a Shelly Gen2+ device's answer that a request failed
// (a JSON-RPC error frame), e.g. code -103 for an invalid argument.
type ShellyRPCError struct {
	Code    int
	Message string
}

// Error implements error.
func (e *ShellyRPCError) Error() string {
	return fmt.Sprintf("the device answered error %d: %s", e.Code, e.Message)
}

// Shelly RPC methods and notifications the relay uses.
const (
	shellyMethodSet       = "Switch.Set"
	shellyMethodGetStatus = "Switch.GetStatus"
	shellyNotifyStatus    = "NotifyStatus"
	shellyNotifyFull      = "NotifyFullStatus"
	shellyNotifyEvent     = "NotifyEvent"
	// shellyMaxPending bounds the requests kept for a reply: one that has
	// not been answered after this many later ones will not be.
	shellyMaxPending = 32
)

// ShellyGen2 is one Switch component of a Shelly Gen2+ device, driven by
// RPC over MQTT.
//
// The lease of Set becomes the device's own safety timer, toggle_after
// (whole seconds, rounded up): should the bridge die with the machine on,
// the device switches it off by itself when the lease ends.
type ShellyGen2 struct {
	core        *mqttCore
	switchID    int
	deviceID    string
	src         string // our name in requests: the device replies on <src>/rpc
	rpcTopic    string
	eventsTopic string
	onlineTopic string

	nextID  atomic.Uint64
	pmu     sync.Mutex
	pending map[uint64]*shellyCall

	smu      sync.Mutex
	status   shellySwitchStatus // the last full status with the partial ones merged onto it
	haveFull bool               // status comes from a full status
}

var _ Relay = (*ShellyGen2)(nil)

// shellyCall is a request waiting for its reply.
type shellyCall struct {
	id      uint64
	method  string
	replies chan shellyReply // buffered: the reply handler never blocks
}

// NewShellyGen2 connects to the broker, subscribes to the device's replies,
// notifications and LWT, and switches the output off (reading the full
// status of the switch on the way). A device that does not answer
// (offline) is logged, not an error: it is reported by Events when it
// comes online. The error is a bad config, a broker that refuses or cannot
// be reached before ctx ends, or ctx's error.
func NewShellyGen2(ctx context.Context, cfg ShellyGen2Config) (*ShellyGen2, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	timeout, _ := confirmTimeout("shelly gen2", cfg.ConfirmTimeout)
	src := mqttClientID("shelly2-" + cfg.Prefix)
	s := &ShellyGen2{
		core: newMQTTCore(fmt.Sprintf("relay: shelly gen2 %s switch %d", cfg.Prefix, cfg.SwitchID), cfg.Log, timeout,
			"vendor", "shelly_gen2", "device", cfg.Prefix, "switch", cfg.SwitchID),
		switchID:    cfg.SwitchID,
		deviceID:    cfg.DeviceID,
		src:         src,
		rpcTopic:    cfg.Prefix + "/rpc",
		eventsTopic: cfg.Prefix + "/events/rpc",
		onlineTopic: cfg.Prefix + "/online",
		pending:     make(map[uint64]*shellyCall),
	}
	if err := s.core.connect(ctx, cfg.Broker, src, s.resync); err != nil {
		return nil, err
	}
	err := s.core.subscribe(src+"/rpc", s.onReply)
	if err == nil {
		err = s.core.subscribe(s.eventsTopic, s.onNotification)
	}
	if err == nil {
		err = s.core.subscribe(s.onlineTopic, s.onOnline)
	}
	if err == nil {
		err = s.core.startOff(ctx, func(ctx context.Context) error { return s.switchAndWait(ctx, false, 0) })
	}
	if err != nil {
		s.core.client.Close(nil)
		return nil, err
	}
	return s, nil
}

// Set implements Relay. Switching on with lease > 0 sets the device's
// toggle_after to the lease: the device switches off by itself when it
// ends unless told otherwise, and the relay reports that as an Event.
func (s *ShellyGen2) Set(ctx context.Context, on bool, lease time.Duration) error {
	return s.core.set(ctx, on,
		func(ctx context.Context) error { return s.switchAndWait(ctx, on, lease) },
		func(ctx context.Context) error {
			c, err := s.call(ctx, shellyMethodSet, shellySetParams{ID: s.switchID, On: false})
			if err == nil {
				s.forgetCall(c) // nobody waits: its reply is ignored
			}
			return err
		})
}

// shellyToggleAfter turns a lease into toggle_after seconds: whole
// seconds rounded up (the device must not cut a session the bridge still
// runs), none when switching off (toggle_after would switch on again).
func shellyToggleAfter(on bool, lease time.Duration) int64 {
	if !on || lease <= 0 {
		return 0
	}
	return int64(math.Ceil(lease.Seconds()))
}

func (s *ShellyGen2) switchAndWait(ctx context.Context, on bool, lease time.Duration) error {
	tctx, cancel := s.core.withConfirmTimeout(ctx)
	defer cancel()
	w := s.core.expect(on)
	defer s.core.forget(w)

	set, err := s.call(tctx, shellyMethodSet, shellySetParams{ID: s.switchID, On: on, ToggleAfter: shellyToggleAfter(on, lease)})
	if err != nil {
		return s.core.publishErr(ctx, tctx, on, err)
	}
	defer s.forgetCall(set)
	select {
	case rep := <-set.replies:
		if rep.Err != nil {
			return fmt.Errorf("%s: switch %s: %w", s.core.name, onOff(on), rep.Err)
		}
	case <-tctx.Done():
		return s.core.waitErr(ctx, on)
	}

	// The device says it switched; confirm with the state it reports: a
	// notification may already have done so, or the full status say so
	// (the output was already there: no notification comes). Without a
	// full status yet, read it: a partial one has nothing to merge onto.
	confirmed := false
	select {
	case err := <-w.done:
		if err != nil {
			return err
		}
		confirmed = true
	default:
		confirmed = s.fullStatusSays(on)
	}
	if confirmed && s.haveFullStatus() {
		return nil
	}
	get, err := s.call(tctx, shellyMethodGetStatus, shellyIDParams{ID: s.switchID})
	if err != nil {
		if confirmed {
			return nil
		}
		return s.core.publishErr(ctx, tctx, on, err)
	}
	defer s.forgetCall(get)
	replies := get.replies
	for {
		select {
		case err := <-w.done:
			if err != nil {
				return err
			}
			confirmed = true
			if replies == nil {
				return nil
			}
		case rep := <-replies:
			// onReply applied the status before handing the reply over:
			// had it said on, w.done holds it.
			replies = nil
			if rep.Err != nil && !confirmed {
				return fmt.Errorf("%s: switch %s: read the status: %w", s.core.name, onOff(on), rep.Err)
			}
			select {
			case err := <-w.done:
				if err != nil {
					return err
				}
				confirmed = true
			default:
			}
			if confirmed || s.fullStatusSays(on) {
				return nil
			}
			// The status says otherwise: wait for a notification.
		case <-tctx.Done():
			if confirmed {
				return nil // only the status read is missing
			}
			return s.core.waitErr(ctx, on)
		}
	}
}

// fullStatusSays reports whether the status, known in full, has the
// output at on.
func (s *ShellyGen2) fullStatusSays(on bool) bool {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.haveFull && s.status.Output != nil && *s.status.Output == on
}

func (s *ShellyGen2) haveFullStatus() bool {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.haveFull
}

// call publishes a request and registers it for its reply.
func (s *ShellyGen2) call(ctx context.Context, method string, params any) (*shellyCall, error) {
	c := &shellyCall{id: s.nextID.Add(1), method: method, replies: make(chan shellyReply, 1)}
	frame, err := json.Marshal(shellyRequest{ID: c.id, Src: s.src, Method: method, Params: params})
	if err != nil {
		return nil, fmt.Errorf("%s: encode %s: %w", s.core.name, method, err)
	}
	s.pmu.Lock()
	s.pending[c.id] = c
	for id := range s.pending {
		if id+shellyMaxPending < c.id {
			delete(s.pending, id)
		}
	}
	s.pmu.Unlock()
	if err := s.core.publish(ctx, s.rpcTopic, frame); err != nil {
		s.forgetCall(c)
		return nil, err
	}
	return c, nil
}

// forgetCall stops waiting for c's reply: a reply that comes later is
// ignored.
func (s *ShellyGen2) forgetCall(c *shellyCall) {
	s.pmu.Lock()
	delete(s.pending, c.id)
	s.pmu.Unlock()
}

// resync reads the switch's full status: after the device comes online
// (it may have rebooted, and come up off) and after the bridge reconnects
// to the broker (notifications were lost meanwhile). It waits for the
// reply, and runs between Sets: a status read while a Set switches could
// be applied after the notification of the switch, and undo it.
func (s *ShellyGen2) resync() {
	s.core.setMu.Lock()
	defer s.core.setMu.Unlock()
	if s.core.isClosing() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.core.timeout)
	defer cancel()
	c, err := s.call(ctx, shellyMethodGetStatus, shellyIDParams{ID: s.switchID})
	if err != nil {
		s.core.log.Warn("relay could not ask for the switch status", "error", err)
		return
	}
	defer s.forgetCall(c)
	select {
	case rep := <-c.replies:
		if rep.Err != nil {
			s.core.log.Warn("relay could not read the switch status", "error", rep.Err)
		}
	case <-ctx.Done():
		s.core.log.Warn("relay got no switch status", "waited", s.core.timeout)
	}
}

// Events implements Relay.
func (s *ShellyGen2) Events() <-chan Event { return s.core.events }

// Dropped returns how many device messages were dropped as malformed, of
// another firmware's shape, with an unknown value, or (replies) not
// addressed to this relay's requests.
func (s *ShellyGen2) Dropped() int64 { return s.core.dropped.Load() }

// EventsDropped returns how many events were dropped because the events
// channel was full.
func (s *ShellyGen2) EventsDropped() int64 { return s.core.eventsDropped.Load() }

// Close implements Relay: it switches the output off (waiting for the
// device at most ConfirmTimeout), disconnects, and closes Events. The
// error says the device did not confirm off; the relay is released anyway.
func (s *ShellyGen2) Close() error {
	return s.core.close(func(ctx context.Context) error { return s.switchAndWait(ctx, false, 0) })
}

// onReply takes the device's replies on <src>/rpc. A reply is ours only if
// it is addressed to our src, comes from the device (when DeviceID is
// set) and answers a request we sent.
func (s *ShellyGen2) onReply(topic string, payload []byte) {
	rep, err := parseShellyReply(payload)
	if err != nil {
		s.core.drop("shelly_gen2_reply", topic, payload, err)
		return
	}
	if rep.Dst != s.src {
		s.core.drop("shelly_gen2_reply_dst", topic, payload, fmt.Errorf("reply addressed to %q, not to this relay (%q)", rep.Dst, s.src))
		return
	}
	if s.deviceID != "" && rep.Src != s.deviceID {
		s.core.drop("shelly_gen2_reply_src", topic, payload, fmt.Errorf("reply from %q, not from the device %q", rep.Src, s.deviceID))
		return
	}
	if !rep.IDOK {
		s.core.drop("shelly_gen2_reply_id", topic, payload, errors.New("reply id is not a number this relay sends"))
		return
	}
	s.pmu.Lock()
	c := s.pending[rep.ID]
	delete(s.pending, rep.ID)
	s.pmu.Unlock()
	if c == nil {
		if rep.ID >= 1 && rep.ID <= s.nextID.Load() {
			s.core.log.Debug("relay ignored a late reply", "id", rep.ID)
			return
		}
		s.core.drop("shelly_gen2_reply_id", topic, payload, fmt.Errorf("reply to request %d, which this relay never sent", rep.ID))
		return
	}
	if c.method == shellyMethodGetStatus && rep.Err == nil {
		st, err := parseShellySwitchStatus(rep.Result, s.switchID)
		if err != nil {
			s.core.drop("shelly_gen2_status", topic, payload, err)
		} else {
			s.applySwitch(st, true)
		}
	}
	c.replies <- rep // buffered, and c was removed from pending: one reply at most
}

// onNotification takes NotifyStatus and NotifyFullStatus on
// <prefix>/events/rpc.
func (s *ShellyGen2) onNotification(topic string, payload []byte) {
	n, err := parseShellyNotification(payload, s.switchID)
	if err != nil {
		s.core.drop("shelly_gen2_notification", topic, payload, err)
		return
	}
	if s.deviceID != "" && n.Src != s.deviceID {
		s.core.drop("shelly_gen2_notification_src", topic, payload, fmt.Errorf("notification from %q, not from the device %q", n.Src, s.deviceID))
		return
	}
	if n.Switch != nil {
		s.applySwitch(*n.Switch, n.Full)
	}
}

// applySwitch records a status of the switch: a full one replaces what was
// known, a partial one is merged onto it. Only what the update carries is
// reported: a NotifyStatus with "apower" alone says nothing of the output.
func (s *ShellyGen2) applySwitch(st shellySwitchStatus, full bool) {
	s.smu.Lock()
	if full {
		s.status, s.haveFull = st, st.Output != nil
	} else {
		s.status = mergeShellySwitch(s.status, st)
	}
	s.smu.Unlock()
	fault := ""
	if st.Errors != nil && len(*st.Errors) > 0 {
		fault = strings.Join(*st.Errors, ",")
	}
	switch {
	case st.Output != nil && !*st.Output:
		s.core.report(false, fault)
	case st.Output != nil:
		s.core.report(true, "")
		if fault != "" {
			s.core.log.Warn("relay device reports errors", "errors", fault)
		}
	case fault != "":
		s.core.log.Warn("relay device reports errors", "errors", fault)
	}
	if st.APower != nil {
		s.core.power(*st.APower)
	}
}

func (s *ShellyGen2) onOnline(topic string, payload []byte) {
	online, err := parseShellyOnline(payload)
	if err != nil {
		s.core.drop("shelly_online", topic, payload, err)
		return
	}
	if s.core.setOnline(online) {
		s.resync()
	}
}

// shellyRequest is a request frame.
type shellyRequest struct {
	ID     uint64 `json:"id"`
	Src    string `json:"src"`
	Method string `json:"method"`
	Params any    `json:"params,omitempty"`
}

// shellySetParams are Switch.Set's parameters.
type shellySetParams struct {
	ID          int   `json:"id"`
	On          bool  `json:"on"`
	ToggleAfter int64 `json:"toggle_after,omitempty"` // seconds; 0: none
}

// shellyIDParams are the parameters of Switch.GetStatus.
type shellyIDParams struct {
	ID int `json:"id"`
}

// shellyReply is a response frame.
type shellyReply struct {
	ID       uint64 // valid when IDOK
	IDOK     bool   // the id is a number, as the relay sends them
	Src, Dst string
	Result   json.RawMessage
	Err      *ShellyRPCError // the device's error; nil with a result
}

// parseShellyReply decodes a response frame: an id, the device's src, our
// dst, and a result or an error.
func parseShellyReply(payload []byte) (shellyReply, error) {
	var f struct {
		ID     json.RawMessage `json:"id"`
		Src    string          `json:"src"`
		Dst    string          `json:"dst"`
		Method string          `json:"method"`
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    *int   `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(payload, &f); err != nil {
		return shellyReply{}, fmt.Errorf("rpc reply: %w", err)
	}
	switch {
	case f.Method != "":
		return shellyReply{}, fmt.Errorf("rpc reply: a %q request or notification, not a reply", f.Method)
	case len(f.ID) == 0 || string(f.ID) == "null":
		return shellyReply{}, errors.New("rpc reply: no id")
	case f.Src == "":
		return shellyReply{}, errors.New("rpc reply: no src")
	case f.Error == nil && len(f.Result) == 0:
		return shellyReply{}, errors.New("rpc reply: neither result nor error")
	case f.Error != nil && f.Error.Code == nil:
		return shellyReply{}, errors.New("rpc reply: error without a code")
	}
	rep := shellyReply{Src: f.Src, Dst: f.Dst, Result: f.Result}
	if id, err := strconv.ParseUint(string(f.ID), 10, 64); err == nil {
		rep.ID, rep.IDOK = id, true
	}
	if f.Error != nil {
		rep.Err = &ShellyRPCError{Code: *f.Error.Code, Message: f.Error.Message}
	}
	return rep, nil
}

// shellySwitchStatus is what the relay uses of a Switch component's
// status. A nil field was not in the payload: in a NotifyStatus, it did
// not change.
type shellySwitchStatus struct {
	ID     *int      `json:"id"`
	Output *bool     `json:"output"`
	APower *float64  `json:"apower"` // watts
	Errors *[]string `json:"errors"` // "overpower", "overtemp", ...
}

// parseShellySwitchStatus decodes a Switch component's status (whole, as
// Switch.GetStatus returns it, or partial, as NotifyStatus carries it).
func parseShellySwitchStatus(raw []byte, switchID int) (shellySwitchStatus, error) {
	var st shellySwitchStatus
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return st, fmt.Errorf("switch status %s: not a JSON object", quoteShort(raw))
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return shellySwitchStatus{}, fmt.Errorf("switch status: %w", err)
	}
	if st.ID != nil && *st.ID != switchID {
		return shellySwitchStatus{}, fmt.Errorf("switch status of switch:%d, not switch:%d", *st.ID, switchID)
	}
	if st.APower != nil && *st.APower < 0 {
		return shellySwitchStatus{}, fmt.Errorf("switch status: apower %g is negative", *st.APower)
	}
	return st, nil
}

// mergeShellySwitch overlays a partial status onto a known one, as the
// device's documentation says to: what upd carries replaces, the rest
// stays.
func mergeShellySwitch(base, upd shellySwitchStatus) shellySwitchStatus {
	out := base
	if upd.ID != nil {
		out.ID = upd.ID
	}
	if upd.Output != nil {
		out.Output = upd.Output
	}
	if upd.APower != nil {
		out.APower = upd.APower
	}
	if upd.Errors != nil {
		out.Errors = upd.Errors
	}
	return out
}

// shellyNotification is what the relay uses of a notification frame.
type shellyNotification struct {
	Src    string
	Full   bool                // NotifyFullStatus: Switch replaces what was known
	Switch *shellySwitchStatus // nil: nothing about our switch
}

// parseShellyNotification decodes a notification frame for switch
// switchID. NotifyEvent (button pushes and the like) carries no state and
// is returned empty; a method the relay does not know is an error.
func parseShellyNotification(payload []byte, switchID int) (shellyNotification, error) {
	var f struct {
		Src    string          `json:"src"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(payload, &f); err != nil {
		return shellyNotification{}, fmt.Errorf("notification: %w", err)
	}
	n := shellyNotification{Src: f.Src}
	switch f.Method {
	case shellyNotifyStatus:
	case shellyNotifyFull:
		n.Full = true
	case shellyNotifyEvent:
		return n, nil
	case "":
		return shellyNotification{}, errors.New("notification: no method")
	default:
		return shellyNotification{}, fmt.Errorf("notification: unknown method %q", f.Method)
	}
	if f.Src == "" {
		return shellyNotification{}, fmt.Errorf("%s: no src", f.Method)
	}
	var params map[string]json.RawMessage
	if t := bytes.TrimSpace(f.Params); len(t) == 0 || t[0] != '{' {
		return shellyNotification{}, fmt.Errorf("%s: params is not a JSON object", f.Method)
	}
	if err := json.Unmarshal(f.Params, &params); err != nil {
		return shellyNotification{}, fmt.Errorf("%s: %w", f.Method, err)
	}
	key := "switch:" + strconv.Itoa(switchID)
	raw, ok := params[key]
	if !ok {
		if n.Full {
			return shellyNotification{}, fmt.Errorf("%s has no %s: check the relay's SwitchID", f.Method, key)
		}
		return n, nil
	}
	st, err := parseShellySwitchStatus(raw, switchID)
	if err != nil {
		return shellyNotification{}, fmt.Errorf("%s %s: %w", f.Method, key, err)
	}
	n.Switch = &st
	return n, nil
}
