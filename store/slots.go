package store

import (
	"strconv"
	"strings"
)

// Cluster slots. A room's timers go to the timer set of its slot group: TimerGroups groups of
// contiguous slots, each with a hash tag that hashes into the group. Redis Cluster hands masters
// contiguous slot ranges, so a group's set lives on the master of its rooms (unless the group
// straddles a range boundary), and a master that is down holds up its own rooms' timers only.

// ClusterSlots is the number of Redis Cluster hash slots.
const ClusterSlots = 16384

// TimerGroups is how many slot groups (and so timer sets) there are; each holds
// ClusterSlots/TimerGroups contiguous slots.
const TimerGroups = 128

// groupTags[g] is the hash tag of group g: the first string "g0", "g1", ... "g<n>" (n in base
// 36) whose slot falls in g. Computed once, the same on every instance and version.
var groupTags = func() [TimerGroups]string {
	var tags [TimerGroups]string
	for n, left := int64(0), TimerGroups; left > 0; n++ {
		tag := "g" + strconv.FormatInt(n, 36)
		if g := int(crc16(tag)) % ClusterSlots / (ClusterSlots / TimerGroups); tags[g] == "" {
			tags[g] = tag
			left--
		}
	}
	return tags
}()

// GroupTag is the hash tag of slot group g.
func GroupTag(g int) string { return groupTags[g] }

// KeySlot is the Cluster slot of key: CRC16 of its hash tag (the part between the first '{' and
// the next '}', if not empty) or of the whole key, mod ClusterSlots.
func KeySlot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	return int(crc16(key)) % ClusterSlots
}

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
