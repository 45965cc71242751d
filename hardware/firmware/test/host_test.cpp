// Host test of the firmware's frame code and failsafe, against hardware/protocol_vectors.txt.
//   g++ -std=c++11 -Wall -Wextra -I../edge_mcu host_test.cpp ../edge_mcu/edge_proto.cpp ../edge_mcu/edge_core.cpp
//   ./a.out ../../protocol_vectors.txt
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "edge_core.h"

using namespace edge;
typedef std::vector<uint8_t> Bytes;

static int failures = 0, checks = 0;
#define CHECK(cond, what)                                              \
  do {                                                                 \
    checks++;                                                          \
    if (!(cond)) { failures++; std::printf("FAIL %s (%s:%d)\n", std::string(what).c_str(), __FILE__, __LINE__); } \
  } while (0)

static Bytes unhex(const std::string& s) {
  Bytes out;
  if (s == "-") return out;
  for (size_t i = 0; i + 1 < s.size(); i += 2) out.push_back((uint8_t)std::strtoul(s.substr(i, 2).c_str(), 0, 16));
  return out;
}

static void test_vectors(const char* path) {
  std::ifstream f(path);
  if (!f) { std::printf("cannot open %s\n", path); std::exit(2); }
  std::string line;
  int rows = 0;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    std::string kind;
    in >> kind;
    rows++;
    if (kind == "crc") {
      std::string d, c;
      in >> d >> c;
      Bytes data = unhex(d);
      CHECK(crc16(data.data(), data.size()) == std::strtoul(c.c_str(), 0, 16), "crc " + d);
    } else if (kind == "cobs") {
      std::string r, e;
      in >> r >> e;
      Bytes raw = unhex(r), enc = unhex(e), out(raw.size() + raw.size() / 254 + 2);
      size_t n = cobs_encode(raw.data(), raw.size(), out.data());
      CHECK(n == enc.size() && std::memcmp(out.data(), enc.data(), n) == 0, "cobs encode " + r.substr(0, 16));
      Bytes dec(raw.size() + 1);
      int m = cobs_decode(enc.data(), enc.size(), dec.data(), dec.size());
      CHECK(m == (int)raw.size() && std::memcmp(dec.data(), raw.data(), raw.size()) == 0, "cobs decode " + e.substr(0, 16));
    } else if (kind == "frame") {
      std::string name, b, w;
      in >> name >> b >> w;
      Bytes body = unhex(b), wire = unhex(w);
      uint8_t out[MAX_WIRE];
      size_t n = build_frame(body[0], body[1], body.data() + 2, body.size() - 2, out);
      CHECK(n == wire.size() && std::memcmp(out, wire.data(), n) == 0, "build " + name);
      // byte-at-a-time decoder, with garbage before the frame
      FrameDecoder dec;
      Frame fr;
      const uint8_t junk[] = {0x13, 0x37, 0x00};
      for (uint8_t j : junk) dec.push(j, fr);
      bool got = false;
      for (uint8_t x : wire) got = dec.push(x, fr) || got;
      CHECK(got && fr.type == body[0] && fr.seq == body[1] && fr.len == body.size() - 2 &&
                std::memcmp(fr.payload, body.data() + 2, fr.len) == 0, "decode " + name);
      CHECK(dec.good == 1 && dec.bad == 1, "counts " + name);
    } else if (kind == "bad") {
      std::string name, w;
      in >> name >> w;
      Bytes wire = unhex(w);
      Frame fr;
      CHECK(!parse_frame(wire.data(), wire.size(), fr), "reject " + name);
      FrameDecoder dec;
      bool got = false;
      for (uint8_t x : wire) got = dec.push(x, fr) || got;
      got = dec.push(0, fr) || got;
      CHECK(!got && dec.bad >= 1, "count " + name);
    } else {
      CHECK(false, "unknown row kind " + kind);
    }
  }
  CHECK(rows > 20, "vectors file has rows");
}

// ---------------------------------------------------------------- failsafe with a fake board
struct FakeHal : Hal {
  uint32_t now = 0;
  int16_t l = 0, r = 0;
  Bytes tx;
  bool bump_ = false, button_ = false;
  uint16_t mv = 7800;
  uint32_t millis() override { return now; }
  void write(const uint8_t* d, size_t n) override { tx.insert(tx.end(), d, d + n); }
  void set_motors(int16_t a, int16_t b) override { l = a; r = b; }
  uint16_t battery_mv() override { return mv; }
  void motor_current_ma(int16_t& a, int16_t& b) override { a = l; b = r; }
  uint8_t touch(uint8_t ch) override { return ch == 0 && bump_ ? 255 : 0; }
  bool bump() override { return bump_; }
  bool button() override { return button_; }
  bool tilted() override { return false; }
  void set_led(bool) override {}
};

static std::vector<Frame> drain(FakeHal& h) {
  std::vector<Frame> out;
  FrameDecoder d;
  Frame f;
  for (uint8_t b : h.tx) if (d.push(b, f)) out.push_back(f);
  h.tx.clear();
  return out;
}

static void send_to(Core& c, uint8_t type, uint8_t seq, const uint8_t* p, size_t n) {
  uint8_t w[MAX_WIRE];
  size_t len = build_frame(type, seq, p, n, w);
  for (size_t i = 0; i < len; i++) c.receive(w[i]);
}

static void test_failsafe() {
  FakeHal h;
  CoreConfig cfg;
  cfg.failsafe_ms = 300;
  Core c(h, cfg);
  c.begin();
  std::vector<Frame> fr = drain(h);
  CHECK(fr.size() == 2 && fr[0].type == HELLO && fr[0].payload[0] == PROTOCOL_VERSION, "hello on boot");
  uint8_t cmd[4];
  put_u16(cmd, 600);
  put_u16(cmd + 2, (uint16_t)-600);
  send_to(c, MOTOR, 5, cmd, 4);
  CHECK(h.l == 600 && h.r == -600, "motor command applied");
  for (h.now = 0; h.now <= 300; h.now += 10) c.tick();
  CHECK(h.l == 600 && !c.failsafe(), "motors run within the failsafe time");
  h.now = 301;
  c.tick();
  CHECK(h.l == 0 && h.r == 0 && c.failsafe(), "failsafe stops motors after 300 ms without commands");
  h.now = 330;
  c.tick();
  fr = drain(h);
  bool fault = false, flagged = false, acked = false;
  for (const Frame& f : fr) {
    if (f.type == FAULT && f.payload[0] == FAULT_FAILSAFE) fault = true;
    if (f.type == SENSOR && (get_u16(f.payload + 10) & FLAG_FAILSAFE)) flagged = true;
    if (f.type == SENSOR && f.payload[13] == 5) acked = true;
  }
  CHECK(fault && flagged && acked, "failsafe fault, flag and ack seq reported");
  send_to(c, MOTOR, 6, cmd, 4);
  CHECK(h.l == 600 && !c.failsafe(), "a new command clears the failsafe");
  uint8_t dead = 1;
  send_to(c, STATE, 7, &dead, 1);
  CHECK(h.l == 0 && c.dead(), "dead state stops motors");
  send_to(c, MOTOR, 8, cmd, 4);
  CHECK(h.l == 0, "no driving while dead");
  uint8_t tok[4] = {1, 2, 3, 4};
  drain(h);
  send_to(c, HEARTBEAT, 9, tok, 4);
  fr = drain(h);
  CHECK(fr.size() == 1 && fr[0].type == HEARTBEAT && std::memcmp(fr[0].payload, tok, 4) == 0, "heartbeat echoed");
  // bumps are counted on the rising edge
  h.bump_ = true; c.tick(); h.bump_ = false; c.tick(); h.bump_ = true; c.tick();
  h.now += 100;
  c.tick();
  fr = drain(h);
  CHECK(!fr.empty() && fr.back().type == SENSOR && fr.back().payload[12] == 2, "two bumps counted");
  // garbage is dropped, counted, and reported
  const uint8_t junk[] = {0x05, 0x11, 0x22, 0x00};
  for (uint8_t b : junk) c.receive(b);
  c.tick();
  fr = drain(h);
  bool badf = false;
  for (const Frame& f : fr) if (f.type == FAULT && f.payload[0] == FAULT_BAD_FRAME) badf = true;
  CHECK(c.bad_frames() == 1 && badf, "bad frame counted and reported");
  // version mismatch locks the motors
  uint8_t dead0 = 0;
  send_to(c, STATE, 10, &dead0, 1);
  uint8_t hello[6] = {99, 0, 0, 0, 0, 0};
  drain(h);
  send_to(c, HELLO, 11, hello, 6);
  fr = drain(h);
  // docs/serial-protocol.md: FAULT version with the board's version as detail (its own hello may come first)
  bool vfault = false;
  for (const Frame& f : fr)
    if (f.type == FAULT && f.payload[0] == FAULT_VERSION && f.payload[1] == PROTOCOL_VERSION && f.payload[2] == 0)
      vfault = true;
  CHECK(vfault, "FAULT version (detail: the board's version) answers a hello of another version");
  send_to(c, MOTOR, 12, cmd, 4);
  CHECK(h.l == 0, "no driving after a hello with another protocol version");
  // a matching hello unlocks it again
  uint8_t hello1[6] = {PROTOCOL_VERSION, 0, 0, 0, 0, 0};
  send_to(c, HELLO, 13, hello1, 6);
  send_to(c, MOTOR, 14, cmd, 4);
  CHECK(h.l != 0, "a matching hello lets it drive again");
}

int main(int argc, char** argv) {
  test_vectors(argc > 1 ? argv[1] : "../../protocol_vectors.txt");
  test_failsafe();
  std::printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
