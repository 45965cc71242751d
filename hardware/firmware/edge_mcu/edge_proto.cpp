#include "edge_proto.h"

namespace edge {

uint16_t crc16(const uint8_t* data, size_t n, uint16_t crc) {
  for (size_t i = 0; i < n; i++) {
    crc ^= (uint16_t)data[i] << 8;
    for (int b = 0; b < 8; b++) crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
  }
  return crc;
}

size_t cobs_encode(const uint8_t* in, size_t n, uint8_t* out) {
  size_t code_i = 0, o = 1;
  uint8_t code = 1;
  for (size_t i = 0; i < n; i++) {
    if (in[i] == 0) {
      out[code_i] = code;
      code_i = o++;
      code = 1;
    } else {
      out[o++] = in[i];
      code++;
      if (code == 0xFF && i + 1 < n) {
        out[code_i] = code;
        code_i = o++;
        code = 1;
      }
    }
  }
  out[code_i] = code;
  return o;
}

int cobs_decode(const uint8_t* in, size_t n, uint8_t* out, size_t out_cap) {
  size_t i = 0, o = 0;
  while (i < n) {
    uint8_t code = in[i];
    if (code == 0 || i + code > n) return -1;
    for (size_t k = i + 1; k < i + code; k++) {
      if (in[k] == 0 || o >= out_cap) return -1;
      out[o++] = in[k];
    }
    i += code;
    if (code != 0xFF && i < n) {
      if (o >= out_cap) return -1;
      out[o++] = 0;
    }
  }
  return (int)o;
}

size_t build_frame(uint8_t type, uint8_t seq, const uint8_t* payload, size_t n, uint8_t* out) {
  if (n > MAX_PAYLOAD) return 0;
  uint8_t body[MAX_BODY];
  body[0] = type;
  body[1] = seq;
  for (size_t i = 0; i < n; i++) body[2 + i] = payload[i];
  put_u16(body + 2 + n, crc16(body, 2 + n));
  size_t len = cobs_encode(body, n + 4, out);
  out[len++] = 0;
  return len;
}

bool parse_frame(const uint8_t* wire, size_t n, Frame& f) {
  uint8_t body[MAX_BODY];
  int len = cobs_decode(wire, n, body, sizeof body);
  if (len < 4) return false;
  if (crc16(body, len - 2) != get_u16(body + len - 2)) return false;
  f.type = body[0];
  f.seq = body[1];
  f.len = (uint8_t)(len - 4);
  for (int i = 0; i < f.len; i++) f.payload[i] = body[2 + i];
  return true;
}

bool FrameDecoder::push(uint8_t b, Frame& out) {
  if (b == 0) {
    bool ok = false;
    if (overrun_) {
      overrun_ = false;
    } else if (n_ > 0) {
      ok = parse_frame(buf_, n_, out);
      if (ok) good++; else bad++;
    }
    n_ = 0;
    return ok;
  }
  if (overrun_) return false;
  if (n_ >= sizeof buf_) {
    overrun_ = true;
    bad++;
    n_ = 0;
    return false;
  }
  buf_[n_++] = b;
  return false;
}

}  // namespace edge
