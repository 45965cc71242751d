extends Spatial
# edge-runtime arena for Godot 3.x: robots with two eyes (two Viewports),
# food, hazards, pillars, touch, HP/energy, death and respawn.
#
# It is the *client* of the Godot RL Agents wire protocol: Python listens,
# this scene connects (127.0.0.1:--port), then answers env_info / reset /
# action / call / close. Frames: lowercase hex in JSON (what godot-rl's
# GodotEnv reads), or, when the handshake asks for "edge_frames": "binary",
# JSON metadata followed by one length-prefixed blob of raw RGB bytes.
#
# Lockstep: a reply that carries eyes is sent at the start of the next frame,
# after the engine has rendered the viewports with the new poses (no stale
# frames). A dead robot stays dead until the next action step or a
# {"type":"call","method":"respawn","agent":i}; the others are never reset.
#
# Command line (after the engine's own options): --port=11008 --env_seed=0
# --n_agents=1 --eye_w=64 --eye_h=48 --action_repeat=1 --connect_timeout=0
# (seconds; 0 waits for Python forever, as when pressing Play in the editor).

const ACTION_SPACE = {"drive": 3, "turn": 3}  # drive: back/stop/forward; turn: left/none/right
const DRIVE = [-1.0, 0.0, 1.0]
const TURN = [-1.0, 0.0, 1.0]  # heading change sign per turn choice (0 = left)

# world (the same numbers as sim_bridge.arena.ArenaConfig's defaults)
var size = 10.0
var robot_r = 0.25
var cam_h = 0.3
var baseline = 0.15
var fov_deg = 120.0
var n_food = 6
var food_r = 0.25
var food_h = 0.4
var food_energy = 0.3
var n_hazards = 4
var moving_hazards = 2
var hazard_r = 0.3
var hazard_h = 0.6
var hazard_speed = 0.02
var hazard_damage = 0.25
var n_obstacles = 3
var obstacle_r = 0.5
var obstacle_h = 1.2
var wall_h = 0.8
var fwd_speed = 0.2
var back_speed = 0.05
var turn_rate = deg2rad(12.0)
var energy_drain = 1.0 / 400.0
var drive_cost = 0.1
var starve_rate = 1.0 / 100.0
var regen_rate = 1.0 / 1000.0
var regen_above = 0.5
var collision_damage = 0.01
var n_touch = 8
var touch_range = 0.2

# protocol
var port = 11008
var n_agents = 1
var eye_w = 64
var eye_h = 48
var action_repeat = 1
var connect_timeout = 0.0
var peer = StreamPeerTCP.new()
var connected = false
var binary = false
var pending = ""  # reply owed after the next render: "reset", "step" or "respawn"
var pending_agent = -1
var blob = PoolByteArray()
var t_start = 0
var t_retry = 0
var frame = 0

var rng = RandomNumberGenerator.new()
var robots = []
var foods = []
var hazards = []
var obstacles = []
var mats = {}


func _ready():
	var a = {}
	for s in OS.get_cmdline_args():
		if s.begins_with("--") and s.find("=") > 0:
			var kv = s.substr(2, s.length() - 2).split("=", true, 1)
			a[kv[0]] = kv[1]
	port = int(a.get("port", "11008"))
	n_agents = max(1, int(a.get("n_agents", "1")))
	eye_w = max(8, int(a.get("eye_w", "64")))
	eye_h = max(8, int(a.get("eye_h", "48")))
	action_repeat = max(1, int(a.get("action_repeat", "1")))
	connect_timeout = float(a.get("connect_timeout", "0"))
	rng.seed = int(a.get("env_seed", "0"))
	Engine.target_fps = 0
	OS.vsync_enabled = false
	_build_world()
	_place_all()
	t_start = OS.get_ticks_msec()
	_connect()


# ------------------------------------------------------------------ world
func _mat(name, c):
	var m = SpatialMaterial.new()
	m.albedo_color = Color8(c[0], c[1], c[2])
	mats[name] = m
	return m


func _cyl(r, h, m):
	var mi = MeshInstance.new()
	var cm = CylinderMesh.new()
	cm.top_radius = r
	cm.bottom_radius = r
	cm.height = h
	cm.radial_segments = 12
	cm.rings = 1
	mi.mesh = cm
	mi.material_override = m
	mi.cast_shadow = GeometryInstance.SHADOW_CASTING_SETTING_OFF
	add_child(mi)
	return mi


func _box(pos, ext, m):
	var mi = MeshInstance.new()
	var cm = CubeMesh.new()
	cm.size = ext
	mi.mesh = cm
	mi.material_override = m
	mi.cast_shadow = GeometryInstance.SHADOW_CASTING_SETTING_OFF
	mi.translation = pos
	add_child(mi)


func _build_world():
	var env = Environment.new()
	env.background_mode = Environment.BG_COLOR
	env.background_color = Color8(170, 200, 230)
	env.ambient_light_color = Color(1, 1, 1)
	env.ambient_light_energy = 0.6
	var we = WorldEnvironment.new()
	we.environment = env
	add_child(we)
	var sun = DirectionalLight.new()
	sun.rotation_degrees = Vector3(-60, 30, 0)
	sun.shadow_enabled = false
	add_child(sun)
	_box(Vector3(size / 2, -0.05, size / 2), Vector3(size, 0.1, size), _mat("floor", [90, 75, 60]))
	var wm = _mat("wall", [150, 150, 150])
	_box(Vector3(size / 2, wall_h / 2, -0.05), Vector3(size + 0.2, wall_h, 0.1), wm)
	_box(Vector3(size / 2, wall_h / 2, size + 0.05), Vector3(size + 0.2, wall_h, 0.1), wm)
	_box(Vector3(-0.05, wall_h / 2, size / 2), Vector3(0.1, wall_h, size + 0.2), wm)
	_box(Vector3(size + 0.05, wall_h / 2, size / 2), Vector3(0.1, wall_h, size + 0.2), wm)
	var om = _mat("obstacle", [70, 90, 200])
	for i in range(n_obstacles):
		obstacles.append({"pos": Vector2(), "node": _cyl(obstacle_r, obstacle_h, om)})
	var hm = _mat("hazard", [220, 50, 40])
	for i in range(n_hazards):
		hazards.append({"pos": Vector2(), "vel": Vector2(), "node": _cyl(hazard_r, hazard_h, hm)})
	var fm = _mat("food", [60, 200, 60])
	for i in range(n_food):
		foods.append({"pos": Vector2(), "node": _cyl(food_r, food_h, fm)})
	var rm = _mat("robot", [230, 200, 40])
	var show = HBoxContainer.new()  # agent 0's eyes in the window, for people watching
	add_child(show)
	for i in range(n_agents):
		var r = {"pos": Vector2(), "heading": 0.0, "hp": 1.0, "energy": 1.0, "dead": false,
				"in_hazard": [], "touch": [], "node": _cyl(robot_r, 0.3, rm), "vps": [], "cams": [],
				"life": 0, "food": 0, "hazard_hits": 0, "bumps": 0, "action": {}}
		for e in range(2):
			var vp = Viewport.new()
			vp.size = Vector2(eye_w, eye_h)
			vp.render_target_update_mode = Viewport.UPDATE_ALWAYS
			vp.render_target_v_flip = true
			vp.msaa = Viewport.MSAA_DISABLED
			vp.hdr = false
			vp.shadow_atlas_size = 0
			vp.usage = Viewport.USAGE_3D_NO_EFFECTS
			add_child(vp)
			var cam = Camera.new()
			cam.keep_aspect = Camera.KEEP_WIDTH
			cam.fov = fov_deg
			cam.near = 0.02
			cam.far = 30.0
			vp.add_child(cam)
			cam.current = true
			r["vps"].append(vp)
			r["cams"].append(cam)
			if i == 0:
				var tr = TextureRect.new()
				tr.texture = vp.get_texture()
				tr.flip_v = true
				show.add_child(tr)
		robots.append(r)


func _free_point(clear, avoid_robots):
	var p = Vector2()
	for _t in range(200):
		p = Vector2(rng.randf_range(clear, size - clear), rng.randf_range(clear, size - clear))
		var ok = true
		for o in obstacles:
			if p.distance_to(o["pos"]) < clear + obstacle_r:
				ok = false
		for h in hazards:
			if p.distance_to(h["pos"]) < clear + hazard_r + (1.0 if avoid_robots else 0.0):
				ok = false
		for f in foods:
			if p.distance_to(f["pos"]) < clear + food_r:
				ok = false
		if avoid_robots:
			for r in robots:
				if p.distance_to(r["pos"]) < clear + robot_r:
					ok = false
		if ok:
			return p
	return p


func _place_all():
	for o in obstacles:
		o["pos"] = Vector2(-100, -100)
	for h in hazards:
		h["pos"] = Vector2(-100, -100)
	for f in foods:
		f["pos"] = Vector2(-100, -100)
	for r in robots:
		r["pos"] = Vector2(-100, -100)
		r["life"] = 0
	for o in obstacles:
		o["pos"] = _free_point(obstacle_r + robot_r * 2.5, false)
	for j in range(hazards.size()):
		var h = hazards[j]
		h["pos"] = _free_point(hazard_r + robot_r, false)
		var ang = rng.randf_range(0, TAU)
		h["vel"] = Vector2(cos(ang), sin(ang)) * hazard_speed if j < moving_hazards else Vector2()
	for f in foods:
		f["pos"] = _free_point(food_r + 0.1, false)
	for i in range(robots.size()):
		_respawn(i)
	_update_nodes()


func _respawn(i):
	var r = robots[i]
	r["pos"] = Vector2(-100, -100)
	r["pos"] = _free_point(robot_r + 0.3, true)
	r["heading"] = rng.randf_range(-PI, PI)
	r["hp"] = 1.0
	r["energy"] = 1.0
	r["dead"] = false
	r["in_hazard"] = []
	for _h in hazards:
		r["in_hazard"].append(false)
	r["life"] += 1
	r["food"] = 0
	r["hazard_hits"] = 0
	r["bumps"] = 0
	r["action"] = {}
	r["touch"] = _touch(r)


func _update_nodes():
	for o in obstacles:
		o["node"].translation = Vector3(o["pos"].x, obstacle_h / 2, o["pos"].y)
	for h in hazards:
		h["node"].translation = Vector3(h["pos"].x, hazard_h / 2, h["pos"].y)
	for f in foods:
		f["node"].translation = Vector3(f["pos"].x, food_h / 2, f["pos"].y)
	for r in robots:
		var p = Vector3(r["pos"].x, 0.0, r["pos"].y)
		r["node"].translation = p + Vector3(0, 0.15, 0)
		r["node"].visible = not r["dead"]
		var fwd = Vector3(cos(r["heading"]), 0, sin(r["heading"]))
		var left = Vector3.UP.cross(fwd)
		for e in range(2):
			var side = 0.5 * baseline if e == 0 else -0.5 * baseline
			var o = p + fwd * (robot_r + 0.01) + left * side + Vector3(0, cam_h, 0)
			r["cams"][e].global_transform = Transform(Basis(), o).looking_at(o + fwd, Vector3.UP)


# ------------------------------------------------------------------ dynamics
func _step_robot(r, drive_i, turn_i):
	var drive = DRIVE[clamp(drive_i, 0, 2)]
	r["heading"] = wrapf(r["heading"] + TURN[clamp(turn_i, 0, 2)] * turn_rate, -PI, PI)
	var speed = fwd_speed if drive > 0 else (back_speed if drive < 0 else 0.0)
	var v = Vector2(cos(r["heading"]), sin(r["heading"])) * speed * (1.0 if drive >= 0 else -1.0)
	var p = r["pos"] + v
	var bumped = false
	var lo = robot_r
	var hi = size - robot_r
	if p.x < lo or p.x > hi or p.y < lo or p.y > hi:
		p = Vector2(clamp(p.x, lo, hi), clamp(p.y, lo, hi))
		bumped = true
	for o in obstacles:
		var d = p - o["pos"]
		if d.length() < robot_r + obstacle_r:
			p = o["pos"] + d.normalized() * (robot_r + obstacle_r)
			bumped = true
	r["pos"] = p
	if bumped and speed > 0:
		r["hp"] -= collision_damage
		r["bumps"] += 1
	for j in range(hazards.size()):
		var h = hazards[j]
		var d = r["pos"] - h["pos"]
		var touching = d.length() < robot_r + hazard_r
		if touching and not r["in_hazard"][j]:
			r["hp"] -= hazard_damage
			r["hazard_hits"] += 1
		if touching:
			var q = h["pos"] + d.normalized() * (robot_r + hazard_r + 0.02)
			r["pos"] = Vector2(clamp(q.x, lo, hi), clamp(q.y, lo, hi))
		r["in_hazard"][j] = touching
	for f in foods:
		if r["pos"].distance_to(f["pos"]) < robot_r + food_r:
			r["energy"] = min(1.0, r["energy"] + food_energy)
			r["food"] += 1
			f["pos"] = Vector2(-100, -100)
			f["pos"] = _free_point(food_r + 0.1, true)
	r["energy"] = max(0.0, r["energy"] - energy_drain * (1.0 + (drive_cost if speed > 0 else 0.0)))
	if r["energy"] <= 0.0:
		r["hp"] -= starve_rate
	elif r["energy"] > regen_above:
		r["hp"] = min(1.0, r["hp"] + regen_rate)
	r["hp"] = max(0.0, r["hp"])
	r["dead"] = r["hp"] <= 0.0


func _move_hazards():
	for j in range(min(moving_hazards, hazards.size())):
		var h = hazards[j]
		var v = h["vel"].rotated(rng.randfn(0.0, 0.05))
		var p = h["pos"] + v
		if p.x < hazard_r or p.x > size - hazard_r:
			v.x = -v.x
		if p.y < hazard_r or p.y > size - hazard_r:
			v.y = -v.y
		p = Vector2(clamp(p.x, hazard_r, size - hazard_r), clamp(p.y, hazard_r, size - hazard_r))
		for o in obstacles:
			var d = p - o["pos"]
			if d.length() < hazard_r + obstacle_r:
				var n = d.normalized()
				p = o["pos"] + n * (hazard_r + obstacle_r)
				v = v - 2.0 * v.dot(n) * n
		h["pos"] = p
		h["vel"] = v


func _touch(r):
	var out = []
	for _k in range(n_touch):
		out.append(0.0)
	var items = []  # [direction, gap]
	for o in obstacles:
		items.append([o["pos"] - r["pos"], r["pos"].distance_to(o["pos"]) - robot_r - obstacle_r])
	for h in hazards:
		items.append([h["pos"] - r["pos"], r["pos"].distance_to(h["pos"]) - robot_r - hazard_r])
	for f in foods:
		items.append([f["pos"] - r["pos"], r["pos"].distance_to(f["pos"]) - robot_r - food_r])
	var x = r["pos"].x
	var y = r["pos"].y
	items.append([Vector2(-1, 0), x - robot_r])
	items.append([Vector2(1, 0), size - x - robot_r])
	items.append([Vector2(0, -1), y - robot_r])
	items.append([Vector2(0, 1), size - y - robot_r])
	for it in items:
		if it[1] < touch_range:
			var rel = fposmod(it[0].angle() - r["heading"], TAU)
			var k = int(round(rel / (TAU / n_touch))) % n_touch
			out[k] = max(out[k], clamp(1.0 - it[1] / touch_range, 0.0, 1.0))
	return out


func _apply_actions(acts):
	for i in range(robots.size()):
		var r = robots[i]
		if r["dead"]:
			_respawn(i)  # the next step after a death starts a new life for this robot only
		var a = {}
		if typeof(acts) == TYPE_ARRAY and i < acts.size() and typeof(acts[i]) == TYPE_DICTIONARY:
			a = acts[i]
		r["action"] = a
	for _k in range(action_repeat):
		_move_hazards()
		for r in robots:
			if not r["dead"]:
				var a = r["action"]
				_step_robot(r, int(a.get("drive", 1)), int(a.get("turn", 1)))
		frame += 1
	for r in robots:
		r["touch"] = _touch(r)
	_update_nodes()


# ------------------------------------------------------------------ protocol
func _connect():
	peer = StreamPeerTCP.new()
	peer.connect_to_host("127.0.0.1", port)
	t_retry = OS.get_ticks_msec()


func _process(_delta):
	if not connected:
		var st = peer.get_status()
		if st == StreamPeerTCP.STATUS_CONNECTED:
			connected = true
			peer.set_no_delay(true)
			print("edge arena: connected to 127.0.0.1:%d" % port)
		else:
			if connect_timeout > 0 and OS.get_ticks_msec() - t_start > connect_timeout * 1000.0:
				printerr("edge arena: no server on 127.0.0.1:%d after %ss" % [port, connect_timeout])
				_quit(1)
			elif st != StreamPeerTCP.STATUS_CONNECTING or OS.get_ticks_msec() - t_retry > 1000:
				_connect()
			return
	if pending != "":
		_reply_pending()
	while true:
		var msg = _recv()
		if msg == null:
			printerr("edge arena: connection lost")
			_quit(0)
			return
		var kind = msg.get("type", "")
		if kind == "handshake":
			binary = str(msg.get("edge_frames", "hex")) == "binary"
		elif kind == "env_info":
			_send(_env_info())
		elif kind == "reset":
			if msg.has("seed") and msg["seed"] != null:
				rng.seed = int(msg["seed"])
			_place_all()
			pending = "reset"
			return
		elif kind == "action":
			_apply_actions(msg.get("action", []))
			pending = "step"
			return
		elif kind == "call":
			var method = str(msg.get("method", ""))
			if method == "respawn":
				pending_agent = int(msg.get("agent", 0))
				if pending_agent >= 0 and pending_agent < robots.size():
					_respawn(pending_agent)
					_update_nodes()
				pending = "respawn"
				return
			var ret = []
			for r in robots:
				ret.append({"pos": [r["pos"].x, r["pos"].y], "heading": r["heading"], "hp": r["hp"],
						"energy": r["energy"], "dead": r["dead"], "life": r["life"]} if method == "state" else null)
			_send({"type": "call", "returns": ret})
		elif kind == "close":
			print("edge arena: close requested")
			_quit(0)
			return
		else:
			printerr("edge arena: unknown message type '%s'" % kind)


func _env_info():
	var obs_space = {
		"camera_2d_left": {"size": [eye_h, eye_w, 3], "space": "box"},
		"camera_2d_right": {"size": [eye_h, eye_w, 3], "space": "box"},
		"touch": {"size": [n_touch], "space": "box"},
		"hp": {"size": [1], "space": "box"},
		"energy": {"size": [1], "space": "box"},
	}
	var act_space = {}
	for k in ACTION_SPACE:
		act_space[k] = {"size": ACTION_SPACE[k], "action_type": "discrete"}
	var obs_l = []
	var act_l = []
	var names = []
	for _i in range(n_agents):
		obs_l.append(obs_space)
		act_l.append(act_space)
		names.append("shared_policy")
	return {"type": "env_info", "observation_space": obs_l, "action_space": act_l, "n_agents": n_agents,
			"agent_policy_names": names,
			"edge": {"version": 1, "frames": "binary" if binary else "hex", "respawn": true}}


func _agent_obs(i):
	var r = robots[i]
	var o = {}
	var keys = ["camera_2d_left", "camera_2d_right"]
	for e in range(2):
		var img = r["vps"][e].get_texture().get_data()
		img.convert(Image.FORMAT_RGB8)
		var data = img.get_data()
		if binary:
			o[keys[e]] = {"blob": [blob.size(), data.size()]}
			blob.append_array(data)
		else:
			o[keys[e]] = data.hex_encode()
	o["touch"] = r["touch"]
	o["hp"] = [r["hp"]]
	o["energy"] = [r["energy"]]
	return o


func _agent_info(i):
	var r = robots[i]
	return {"action": r["action"], "pos": [r["pos"].x, r["pos"].y], "heading": r["heading"], "life": r["life"],
			"food": r["food"], "hazard_hits": r["hazard_hits"], "bumps": r["bumps"], "frame": frame}


func _reply_pending():
	blob = PoolByteArray()
	var msg = {}
	if pending == "respawn":
		var ok = pending_agent >= 0 and pending_agent < robots.size()
		msg = {"type": "call", "method": "respawn", "agent": pending_agent,
				"returns": [_agent_obs(pending_agent) if ok else null],
				"info": [_agent_info(pending_agent) if ok else null]}
	else:
		var obs = []
		var info = []
		var done = []
		var zeros = []  # the protocol's score field: this world hands out none (edge-runtime drops it anyway)
		for i in range(robots.size()):
			obs.append(_agent_obs(i))
			info.append(_agent_info(i))
			done.append(robots[i]["dead"])
			zeros.append(0.0)
		msg = {"type": pending, "obs": obs, "info": info}
		if pending == "step":
			msg["done"] = done
			msg["reward"] = zeros
	pending = ""
	_send(msg)


func _send(d):
	if binary and blob.size() > 0:
		d["blob"] = blob.size()
	var s = to_json(d).to_utf8()
	peer.put_u32(s.size())
	peer.put_data(s)
	if binary and blob.size() > 0:
		peer.put_u32(blob.size())
		peer.put_data(blob)
	blob = PoolByteArray()


func _recv():
	if peer.get_status() != StreamPeerTCP.STATUS_CONNECTED:
		return null
	var n = peer.get_u32()
	if n <= 0 or peer.get_status() != StreamPeerTCP.STATUS_CONNECTED:
		return null
	var res = peer.get_data(n)
	if res[0] != OK:
		return null
	var parsed = parse_json(res[1].get_string_from_utf8())
	if typeof(parsed) != TYPE_DICTIONARY:
		return {"type": "?"}
	return parsed


func _quit(code):
	OS.exit_code = code
	if connected:
		peer.disconnect_from_host()
	connected = false
	set_process(false)
	get_tree().quit()
