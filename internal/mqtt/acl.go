package mqtt

import (
	"strings"

	"github.com/fabgate/fabgate/internal/fablab"
	"github.com/fabgate/fabgate/internal/wire"
)

// policy is FabGate's MQTT access policy (DESIGN §4), independent of any
// broker: the embedded broker's hook asks it, and WriteMosquittoConfig
// writes the same rules for Mosquitto. Everything not allowed here is denied.
//
// Identities are MQTT usernames, which the broker has authenticated before
// any of these questions is asked:
//   - the server user may publish and subscribe to anything under the prefix
//     (wildcards included), and retain anything there except a command;
//   - a device (username = device id) may publish only its own status, hb,
//     tap, ack and state, retain only its own status and state, and
//     subscribe only to its own cmd and allowlist and to the server status,
//     each spelled out (no wildcards);
//   - anyone else may do nothing.
type policy struct {
	topics     wire.Topics
	under      string // prefix + "/"
	serverUser string
}

func newPolicy(prefix, serverUser string) (policy, error) {
	t, err := wire.NewTopics(prefix)
	if err != nil {
		return policy{}, err
	}
	return policy{topics: t, under: prefix + "/", serverUser: serverUser}, nil
}

// Denial reasons, as logged with each refusal.
const (
	reasonNotServerTopic  = "outside the topic prefix"
	reasonNotDeviceTopic  = "not one of the device's own publish topics"
	reasonNotDeviceFilter = "not one of the device's own subscribe topics (no wildcards)"
	reasonRetainedCommand = "commands are never retained"
	reasonDeviceRetain    = "a device may retain only its own status and state"
	reasonUnknownUser     = "unknown user"
)

// isServer reports whether username is the FabGate server's own user.
func (p policy) isServer(username string) bool {
	return username != "" && username == p.serverUser
}

// isDevice reports whether username is shaped like a device id (and is not
// the server user, who is never treated as a device).
func (p policy) isDevice(username string) bool {
	return !p.isServer(username) && fablab.ValidDeviceID(username)
}

// underPrefix reports whether a topic name or filter lies strictly under the
// prefix ("fabgate/v1/…", not "fabgate/v1" nor "fabgate/v10/…").
func (p policy) underPrefix(topic string) bool {
	return len(topic) > len(p.under) && strings.HasPrefix(topic, p.under)
}

// mayPublish decides a publish (or a will) of username to topic. When it
// refuses, reason says why.
func (p policy) mayPublish(username, topic string, retained bool) (ok bool, reason string) {
	switch {
	case p.isServer(username):
		if !p.underPrefix(topic) {
			return false, reasonNotServerTopic
		}
		if retained {
			if _, k, isDev := p.topics.Parse(topic); isDev && k == wire.KindCmd {
				return false, reasonRetainedCommand
			}
		}
		return true, ""
	case p.isDevice(username):
		if !p.topics.MayPublish(username, topic) {
			return false, reasonNotDeviceTopic
		}
		if retained {
			if _, k, _ := p.topics.Parse(topic); k != wire.KindStatus && k != wire.KindState {
				return false, reasonDeviceRetain
			}
		}
		return true, ""
	}
	return false, reasonUnknownUser
}

// maySubscribe decides a subscription of username to filter, and also the
// delivery of a message on a topic (a topic name is a filter without
// wildcards).
func (p policy) maySubscribe(username, filter string) (ok bool, reason string) {
	switch {
	case p.isServer(username):
		if !p.underPrefix(filter) {
			return false, reasonNotServerTopic
		}
		return true, ""
	case p.isDevice(username):
		if !p.topics.MaySubscribe(username, filter) {
			return false, reasonNotDeviceFilter
		}
		return true, ""
	}
	return false, reasonUnknownUser
}
