#include "edge_core.h"

namespace edge {

static int16_t clamp_motor(int16_t v) { return v > 1000 ? 1000 : (v < -1000 ? -1000 : v); }

void Core::begin() {
  drive(0, 0);
  last_cmd_ms_ = hal_.millis();
  send_hello();
  send_fault(FAULT_RESET, 0);
}

void Core::send(uint8_t type, const uint8_t* payload, size_t n) {
  uint8_t wire[MAX_WIRE];
  size_t len = build_frame(type, seq_++, payload, n, wire);
  if (len) hal_.write(wire, len);
}

void Core::send_hello() {
  uint8_t p[6 + 16];
  p[0] = PROTOCOL_VERSION;
  p[1] = cfg_.n_touch;
  put_u16(p + 2, cfg_.failsafe_ms);
  put_u16(p + 4, cfg_.fw_version);
  size_t n = 6;
  for (const char* c = cfg_.board; *c && n < sizeof p; c++) p[n++] = (uint8_t)*c;
  send(HELLO, p, n);
}

void Core::send_fault(uint8_t code, uint16_t detail) {
  uint8_t p[3] = {code, (uint8_t)(detail & 0xFF), (uint8_t)(detail >> 8)};
  send(FAULT, p, 3);
}

void Core::drive(int16_t l, int16_t r) {
  left_ = clamp_motor(l);
  right_ = clamp_motor(r);
  hal_.set_motors(left_, right_);
}

void Core::receive(uint8_t byte) {
  Frame f;
  if (dec_.push(byte, f)) handle(f);
}

void Core::handle(const Frame& f) {
  switch (f.type) {
    case HELLO:
      version_ok_ = f.len >= 1 && f.payload[0] == PROTOCOL_VERSION;
      send_hello();
      if (!version_ok_) {
        drive(0, 0);
        send_fault(FAULT_VERSION, PROTOCOL_VERSION);
      }
      break;
    case MOTOR: {
      if (f.len != 4) break;
      ack_seq_ = f.seq;
      last_cmd_ms_ = hal_.millis();
      failsafe_ = false;
      bool low = hal_.battery_mv() < cfg_.low_battery_mv;
      if (dead_ || !version_ok_ || low) drive(0, 0);
      else drive((int16_t)get_u16(f.payload), (int16_t)get_u16(f.payload + 2));
      break;
    }
    case HEARTBEAT:
      if (f.len == 4) send(HEARTBEAT, f.payload, 4);  // echo the token
      break;
    case STOP:
      drive(0, 0);
      break;
    case STATE:
      if (f.len == 1) {
        dead_ = f.payload[0] != 0;
        if (dead_) drive(0, 0);
      }
      break;
    default:
      send_fault(FAULT_UNKNOWN_TYPE, f.type);
  }
}

void Core::send_report() {
  uint8_t p[15 + MAX_TOUCH];
  int16_t il = 0, ir = 0;
  hal_.motor_current_ma(il, ir);
  uint16_t mv = hal_.battery_mv();
  bool bump = hal_.bump();
  uint16_t flags = 0;
  if (bump) flags |= FLAG_BUMP;
  if (hal_.tilted()) flags |= FLAG_TILT;
  if (il > (int16_t)cfg_.stall_ma || il < -(int16_t)cfg_.stall_ma || ir > (int16_t)cfg_.stall_ma || ir < -(int16_t)cfg_.stall_ma) flags |= FLAG_STALL;
  if (hal_.button()) flags |= FLAG_BUTTON;
  if (failsafe_) flags |= FLAG_FAILSAFE;
  if (mv < cfg_.low_battery_mv) flags |= FLAG_LOW_BATTERY;
  if (dead_) flags |= FLAG_DEAD;
  put_u32(p, hal_.millis());
  put_u16(p + 4, mv);
  put_u16(p + 6, (uint16_t)il);
  put_u16(p + 8, (uint16_t)ir);
  put_u16(p + 10, flags);
  p[12] = bumps_;
  p[13] = ack_seq_;
  uint8_t n = cfg_.n_touch > MAX_TOUCH ? MAX_TOUCH : cfg_.n_touch;
  p[14] = n;
  for (uint8_t i = 0; i < n; i++) p[15 + i] = hal_.touch(i);
  send(SENSOR, p, 15 + n);
  if ((flags & FLAG_STALL) && !stall_reported_) send_fault(FAULT_STALL, (uint16_t)(il > ir ? il : ir));
  stall_reported_ = (flags & FLAG_STALL) != 0;
}

void Core::tick() {
  uint32_t now = hal_.millis();
  // the failsafe: motors stop by themselves when commands stop arriving, whatever the host does
  if ((left_ || right_) && (uint32_t)(now - last_cmd_ms_) > cfg_.failsafe_ms) {
    drive(0, 0);
    failsafe_ = true;
    send_fault(FAULT_FAILSAFE, cfg_.failsafe_ms);
  }
  if ((left_ || right_) && hal_.battery_mv() < cfg_.low_battery_mv) {
    drive(0, 0);
    send_fault(FAULT_BATTERY, hal_.battery_mv());
  }
  bool b = hal_.bump();
  if (b && !bump_prev_) bumps_++;
  bump_prev_ = b;
  if (dec_.bad != reported_bad_) {
    reported_bad_ = dec_.bad;
    send_fault(FAULT_BAD_FRAME, (uint16_t)(reported_bad_ > 0xFFFF ? 0xFFFF : reported_bad_));
  }
  if ((uint32_t)(now - last_report_ms_) >= cfg_.report_period_ms) {
    last_report_ms_ = now;
    send_report();
  }
  hal_.set_led(dead_ ? ((now / 250) & 1) : true);  // blink when dead, steady when alive
}

}  // namespace edge
