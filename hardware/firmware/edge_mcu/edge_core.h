// The board's behaviour, independent of the board: message handling, reports, and the motor failsafe.
// The sketch (edge_mcu.ino) gives it a Hal; the host test gives it a fake one.
#pragma once
#include "edge_proto.h"

namespace edge {

class Hal {
 public:
  virtual ~Hal() {}
  virtual uint32_t millis() = 0;
  virtual void write(const uint8_t* data, size_t n) = 0;
  virtual void set_motors(int16_t left, int16_t right) = 0;  // permille, -1000..1000
  virtual uint16_t battery_mv() = 0;
  virtual void motor_current_ma(int16_t& left, int16_t& right) = 0;
  virtual uint8_t touch(uint8_t channel) = 0;  // 0..255
  virtual bool bump() = 0;
  virtual bool button() = 0;
  virtual bool tilted() = 0;
  virtual void set_led(bool on) = 0;
};

struct CoreConfig {
  uint16_t failsafe_ms = 300;       // motors stop when no motor command arrives for this long
  uint16_t report_period_ms = 20;   // sensor report every 20 ms (50 Hz)
  uint16_t low_battery_mv = 6000;   // the board refuses to drive below this
  uint16_t stall_ma = 1800;         // a motor above this current counts as stalled
  uint8_t n_touch = 8;
  uint16_t fw_version = 0x0100;
  const char* board = "edge-mcu";
};

class Core {
 public:
  Core(Hal& hal, const CoreConfig& cfg) : hal_(hal), cfg_(cfg) {}
  void begin();                  // announce: hello + reset fault
  void receive(uint8_t byte);    // feed every byte read from the serial port
  void tick();                   // call often (every loop); failsafe, bump edges, reports, LED
  int16_t left() const { return left_; }
  int16_t right() const { return right_; }
  bool failsafe() const { return failsafe_; }
  bool dead() const { return dead_; }
  uint32_t bad_frames() const { return dec_.bad; }

 private:
  void handle(const Frame& f);
  void send(uint8_t type, const uint8_t* payload, size_t n);
  void send_hello();
  void send_fault(uint8_t code, uint16_t detail);
  void send_report();
  void drive(int16_t l, int16_t r);

  Hal& hal_;
  CoreConfig cfg_;
  FrameDecoder dec_;
  uint8_t seq_ = 0;
  uint8_t ack_seq_ = 0;
  int16_t left_ = 0, right_ = 0;
  uint32_t last_cmd_ms_ = 0;
  uint32_t last_report_ms_ = 0;
  uint32_t reported_bad_ = 0;
  uint8_t bumps_ = 0;
  bool bump_prev_ = false;
  bool failsafe_ = false;
  bool dead_ = false;
  bool version_ok_ = true;
  bool stall_reported_ = false;
};

}  // namespace edge
