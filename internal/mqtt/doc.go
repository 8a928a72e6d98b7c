// Package mqtt is FabGate's MQTT plumbing (DESIGN §4):
//
//   - Broker, the embedded broker (mochi-mqtt) with FabGate's own
//     authentication and ACL hook, deny by default: the server user may use
//     everything under the topic prefix; a device (username = device id,
//     password = its secret) may publish only its own status, hb, tap, ack
//     and state and subscribe only to its own cmd and allowlist and to the
//     server status. Refusals are counted (Broker.Stats) and logged once.
//   - Client, a paho client wrapper that follows the contract's client rules
//     (explicit client id, clean session, connect retry and auto reconnect,
//     keepalive ≤ 20 s, subscriptions made again on each connection,
//     handlers on worker goroutines, a bounded wait on every token).
//   - WriteMosquittoConfig and the Mosquitto password hash, for labs that run
//     Mosquitto instead of the embedded broker.
//
// The topic rules themselves come from internal/wire.
package mqtt
