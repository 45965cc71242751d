// edge-runtime reference firmware (protocol v1) for an Arduino-compatible board.
//
// Tested target: any Arduino-core board with Serial over USB (Arduino Nano/Uno, Raspberry Pi Pico with the
// arduino-pico core). The protocol and the failsafe live in edge_core.cpp / edge_proto.cpp and are compiled
// and tested on the host (tests/test_hardware_firmware.py); this file only wires pins to them.
//
// Wiring (change the pin map below for your board):
//   motor driver (TB6612FNG / L298N style): PWM + direction pin per side
//   battery: voltage divider into BATTERY_PIN (BATTERY_DIVIDER * ADC volts = battery volts)
//   motor current: shunt amplifiers into CURRENT_L_PIN / CURRENT_R_PIN (optional, -1 = not fitted)
//   touch: N_TOUCH bumper switches to ground (INPUT_PULLUP), any pressed = bump
//   tilt switch to ground on TILT_PIN (optional), revive button to ground on BUTTON_PIN, status LED
#include "edge_core.h"

#define BAUD 115200
#define PWM_L 5
#define DIR_L 4
#define PWM_R 6
#define DIR_R 7
#define BATTERY_PIN A0
#define BATTERY_DIVIDER 3.0f   // 2S Li-ion through a 20k/10k divider
#define ADC_REF_MV 5000.0f     // 3300 on 3.3 V boards
#define ADC_MAX 1023.0f        // 4095 on 12-bit ADCs
#define CURRENT_L_PIN -1
#define CURRENT_R_PIN -1
#define CURRENT_MA_PER_MV 1.0f
#define TILT_PIN -1
#define BUTTON_PIN 2
#define LED_PIN LED_BUILTIN
#define N_TOUCH 4
static const uint8_t TOUCH_PINS[N_TOUCH] = {8, 9, 10, 11};

class ArduinoHal : public edge::Hal {
 public:
  uint32_t millis() override { return ::millis(); }
  void write(const uint8_t* d, size_t n) override { Serial.write(d, n); }
  void set_motors(int16_t l, int16_t r) override {
    digitalWrite(DIR_L, l >= 0 ? HIGH : LOW);
    analogWrite(PWM_L, (uint8_t)((abs(l) * 255L) / 1000));
    digitalWrite(DIR_R, r >= 0 ? HIGH : LOW);
    analogWrite(PWM_R, (uint8_t)((abs(r) * 255L) / 1000));
  }
  uint16_t battery_mv() override { return (uint16_t)(analogRead(BATTERY_PIN) * ADC_REF_MV / ADC_MAX * BATTERY_DIVIDER); }
  void motor_current_ma(int16_t& l, int16_t& r) override {
    l = CURRENT_L_PIN < 0 ? 0 : (int16_t)(analogRead(CURRENT_L_PIN) * ADC_REF_MV / ADC_MAX * CURRENT_MA_PER_MV);
    r = CURRENT_R_PIN < 0 ? 0 : (int16_t)(analogRead(CURRENT_R_PIN) * ADC_REF_MV / ADC_MAX * CURRENT_MA_PER_MV);
  }
  uint8_t touch(uint8_t ch) override { return ch < N_TOUCH && digitalRead(TOUCH_PINS[ch]) == LOW ? 255 : 0; }
  bool bump() override {
    for (uint8_t i = 0; i < N_TOUCH; i++) if (digitalRead(TOUCH_PINS[i]) == LOW) return true;
    return false;
  }
  bool button() override { return BUTTON_PIN >= 0 && digitalRead(BUTTON_PIN) == LOW; }
  bool tilted() override { return TILT_PIN >= 0 && digitalRead(TILT_PIN) == LOW; }
  void set_led(bool on) override { digitalWrite(LED_PIN, on ? HIGH : LOW); }
};

static ArduinoHal hal;
static edge::CoreConfig make_config() {
  edge::CoreConfig c;
  c.n_touch = N_TOUCH;
  return c;
}
static edge::Core core(hal, make_config());

void setup() {
  pinMode(PWM_L, OUTPUT); pinMode(DIR_L, OUTPUT); pinMode(PWM_R, OUTPUT); pinMode(DIR_R, OUTPUT);
  analogWrite(PWM_L, 0); analogWrite(PWM_R, 0);  // motors off before anything else
  for (uint8_t i = 0; i < N_TOUCH; i++) pinMode(TOUCH_PINS[i], INPUT_PULLUP);
  if (BUTTON_PIN >= 0) pinMode(BUTTON_PIN, INPUT_PULLUP);
  if (TILT_PIN >= 0) pinMode(TILT_PIN, INPUT_PULLUP);
  pinMode(LED_PIN, OUTPUT);
  Serial.begin(BAUD);
  core.begin();
}

void loop() {
  while (Serial.available() > 0) core.receive((uint8_t)Serial.read());
  core.tick();
}
