// Package mqtt is FabGate's MQTT plumbing (DESIGN §4):
//
//   - Broker, the embedded broker (mochi-mqtt) with FabGate's own
//     authentication and ACL hook, deny by default: the server user may use
//     everything under the topic prefix; a device (username = device id,
//     password = its secret) may publish only its own status, hb, tap, ack
//     and state and subscribe only to its own cmd and allowlist and to the
//     server status; a device's client id must be its id (one connection per
//     device). Its listener bounds what a client may cost before logging in
//     (a deadline and a size limit for the CONNECT, connection caps) and a
//     device's packets after (guard.go). DisconnectDevice cuts a revoked
//     device. Refusals are counted (Broker.Stats) and logged once, clipped
//     and rate-limited.
//   - Client, a paho client wrapper that follows the contract's client rules
//     (explicit client id, clean session, connect retry and auto reconnect,
//     keepalive ≤ 20 s, subscriptions made again on each connection,
//     handlers on worker goroutines, a bounded wait on every token).
//   - WriteMosquittoConfig and the Mosquitto password hash, for labs that run
//     Mosquitto instead of the embedded broker.
//
// The topic rules themselves come from internal/wire.
package mqtt
