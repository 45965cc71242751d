// edge-runtime serial protocol v1: frame code shared by the firmware and its host test.
// Normative description: docs/serial-protocol.md. Pure C++ (no Arduino headers, no heap).
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace edge {

static const uint8_t PROTOCOL_VERSION = 1;
static const size_t MAX_PAYLOAD = 64;
static const size_t MAX_BODY = 2 + MAX_PAYLOAD + 2;          // type, seq, payload, crc
static const size_t MAX_WIRE = MAX_BODY + MAX_BODY / 254 + 2;  // COBS overhead + delimiter
static const uint8_t MAX_TOUCH = 16;

enum MsgType : uint8_t { HELLO = 0x01, SENSOR = 0x02, MOTOR = 0x03, HEARTBEAT = 0x04, FAULT = 0x05, STOP = 0x06, STATE = 0x07 };
enum Flags : uint16_t { FLAG_BUMP = 1, FLAG_TILT = 2, FLAG_STALL = 4, FLAG_BUTTON = 8, FLAG_FAILSAFE = 16,
                        FLAG_LOW_BATTERY = 32, FLAG_DEAD = 64 };
enum FaultCode : uint8_t { FAULT_FAILSAFE = 1, FAULT_BAD_FRAME = 2, FAULT_VERSION = 3, FAULT_STALL = 4,
                           FAULT_BATTERY = 5, FAULT_RESET = 6, FAULT_UNKNOWN_TYPE = 7 };

// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF). "123456789" -> 0x29B1.
uint16_t crc16(const uint8_t* data, size_t n, uint16_t crc = 0xFFFF);

// COBS. encode writes at most n + n/254 + 1 bytes, no delimiter. decode returns the length, or -1 if malformed.
size_t cobs_encode(const uint8_t* in, size_t n, uint8_t* out);
int cobs_decode(const uint8_t* in, size_t n, uint8_t* out, size_t out_cap);

// Build one wire frame (delimiter included) into out (>= MAX_WIRE bytes). Returns its length, 0 if payload too long.
size_t build_frame(uint8_t type, uint8_t seq, const uint8_t* payload, size_t n, uint8_t* out);

struct Frame {
  uint8_t type;
  uint8_t seq;
  uint8_t len;
  uint8_t payload[MAX_PAYLOAD];
};

// Checks one received frame (without delimiter): COBS, length, CRC.
bool parse_frame(const uint8_t* wire, size_t n, Frame& f);

// Byte-at-a-time decoder: push() returns true when a good frame is complete. Bad frames are counted, never fatal.
class FrameDecoder {
 public:
  bool push(uint8_t b, Frame& out);
  uint32_t good = 0;
  uint32_t bad = 0;
 private:
  uint8_t buf_[MAX_WIRE];
  size_t n_ = 0;
  bool overrun_ = false;
};

// little-endian helpers
inline void put_u16(uint8_t* p, uint16_t v) { p[0] = v & 0xFF; p[1] = v >> 8; }
inline void put_u32(uint8_t* p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (v >> (8 * i)) & 0xFF; }
inline uint16_t get_u16(const uint8_t* p) { return (uint16_t)(p[0] | (p[1] << 8)); }
inline uint32_t get_u32(const uint8_t* p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); }

}  // namespace edge
