// i18n: every string the ED screen shows, in Simplified Chinese (the default) and
// English, and the per-user language choice. The choice is kept in localStorage for
// now; once sign-in knows the user's language, the hub can set it instead.

const dict = {
  "zh-CN": {
    "app.title": "急救生命线 · 急诊屏",
    "lang.toggle": "English",
    "board.title": "来院救护车",
    "board.empty": "当前没有在线或来院途中的救护车",
    "board.hubLost": "与医院服务器的连接中断，显示的信息可能已过时",
    "board.updated": "更新于 {t}",
    "board.sound": "开启提示音",
    "board.ack": "知道了",
    "col.unit": "车辆",
    "col.link": "连接",
    "col.contact": "最后联系",
    "col.eta": "预计到达",
    "col.mission": "任务状态",
    "col.patient": "患者",
    "live.on": "直播中",
    "live.off": "未直播",
    "link.good": "良好",
    "link.fair": "一般",
    "link.poor": "差",
    "link.lost": "中断",
    "mission.dispatched": "出车中",
    "mission.on_scene": "到达现场",
    "mission.transporting": "转运中",
    "mission.arrived": "已到院",
    "mission.cancelled": "已取消",
    "mission.diverted": "改送他院",
    "ago.s": "{n} 秒前",
    "ago.m": "{n} 分钟前",
    "ago.h": "{n} 小时前",
    "eta.in": "{n} 分钟后",
    "eta.now": "即将到达",
    "patient.age": "年龄 {v}",
    "patient.sex.male": "男",
    "patient.sex.female": "女",
    "patient.sex.unknown": "性别不详",
    "patient.complaint": "主诉",
    "patient.none": "尚无患者信息",
    "patient.lkw": "最后正常时间 {t}（{ago}）",
    "cond.stemi": "STEMI",
    "cond.stroke": "卒中",
    "cond.major_trauma": "严重创伤",
    "cond.sepsis": "脓毒症",
    "cond.cardiac_arrest": "心脏骤停",
    "triage.level": "{n} 级",
    "triage": "分诊",
    "alert.stemi": "STEMI 预警：请启动导管室",
    "alert.stroke": "卒中预警：请启动卒中团队",
    "view.back": "返回看板",
    "view.video": "现场视频",
    "view.noVideo": "等待视频…",
    "view.connecting": "正在连接…",
    "view.connected": "已连接",
    "view.reconnecting": "连接中断，正在重连…",
    "view.notLive": "该车当前未直播",
    "view.alarms": "报警",
    "view.noAlarms": "无报警",
    "view.trends": "趋势（自接诊起）",
    "view.noTrends": "暂无趋势数据",
    "view.settings": "设置",
    "view.sound": "开启现场声音",
    "view.calibration": "屏幕校准",
    "view.calHelp": "用尺子测量下方刻度条，调整直到它正好 50 毫米。",
    "view.calValue": "每毫米 {v} 像素",
    "view.calReset": "恢复默认",
    "view.close": "关闭",
    "view.lead": "导联",
    "view.speed": "25 mm/s · 10 mm/mV",
    "view.gap": "无数据",
    "view.measured": "测量于 {t}",
    "view.invalid": "数值不可靠",
    "view.device": "监护仪",
    "alarm.high": "高",
    "alarm.medium": "中",
    "alarm.low": "低",
    "alarm.none": "提示",
    "alarm.cleared": "已解除",
    "dev.connected": "监护仪已连接",
    "dev.disconnected": "监护仪断开",
    "dev.silent": "监护仪无数据",
    "dev.lead-off": "导联脱落",
    "dev.sensor-off": "传感器脱落",
    "dev.sensor-on": "传感器已连接",
    "dev.no-signal": "无有效信号",
    "unit./min": "次/分",
    "unit.rr": "次/分",
    "wave.Pleth": "容积波",
    "wave.Resp": "呼吸",
    "wave.CO2": "CO₂",
  },
  "en": {
    "app.title": "Lifeline · ED screen",
    "lang.toggle": "中文",
    "board.title": "Incoming ambulances",
    "board.empty": "No ambulance is live or on its way",
    "board.hubLost": "Lost contact with the hospital server: what is shown may be out of date",
    "board.updated": "Updated {t}",
    "board.sound": "Turn on alert sound",
    "board.ack": "Acknowledge",
    "col.unit": "Unit",
    "col.link": "Link",
    "col.contact": "Last contact",
    "col.eta": "ETA",
    "col.mission": "Mission",
    "col.patient": "Patient",
    "live.on": "Live",
    "live.off": "Not live",
    "link.good": "Good",
    "link.fair": "Fair",
    "link.poor": "Poor",
    "link.lost": "Lost",
    "mission.dispatched": "Dispatched",
    "mission.on_scene": "On scene",
    "mission.transporting": "Transporting",
    "mission.arrived": "Arrived",
    "mission.cancelled": "Cancelled",
    "mission.diverted": "Diverted",
    "ago.s": "{n} s ago",
    "ago.m": "{n} min ago",
    "ago.h": "{n} h ago",
    "eta.in": "in {n} min",
    "eta.now": "arriving",
    "patient.age": "Age {v}",
    "patient.sex.male": "Male",
    "patient.sex.female": "Female",
    "patient.sex.unknown": "Sex unknown",
    "patient.complaint": "Complaint",
    "patient.none": "No patient card yet",
    "patient.lkw": "Last known well {t} ({ago})",
    "cond.stemi": "STEMI",
    "cond.stroke": "Stroke",
    "cond.major_trauma": "Major trauma",
    "cond.sepsis": "Sepsis",
    "cond.cardiac_arrest": "Cardiac arrest",
    "triage.level": "Level {n}",
    "triage": "Triage",
    "alert.stemi": "STEMI pre-alert: activate the cath lab",
    "alert.stroke": "Stroke pre-alert: activate the stroke team",
    "view.back": "Board",
    "view.video": "Live video",
    "view.noVideo": "Waiting for video…",
    "view.connecting": "Connecting…",
    "view.connected": "Connected",
    "view.reconnecting": "Connection lost, reconnecting…",
    "view.notLive": "This unit is not live now",
    "view.alarms": "Alarms",
    "view.noAlarms": "No alarms",
    "view.trends": "Trends since pick-up",
    "view.noTrends": "No trend data yet",
    "view.settings": "Settings",
    "view.sound": "Turn on ambulance sound",
    "view.calibration": "Screen calibration",
    "view.calHelp": "Measure the bar below with a ruler and adjust until it is exactly 50 mm.",
    "view.calValue": "{v} pixels per mm",
    "view.calReset": "Default",
    "view.close": "Close",
    "view.lead": "Lead",
    "view.speed": "25 mm/s · 10 mm/mV",
    "view.gap": "No data",
    "view.measured": "measured {t}",
    "view.invalid": "value unreliable",
    "view.device": "Monitor",
    "alarm.high": "High",
    "alarm.medium": "Med",
    "alarm.low": "Low",
    "alarm.none": "Info",
    "alarm.cleared": "cleared",
    "dev.connected": "Monitor connected",
    "dev.disconnected": "Monitor disconnected",
    "dev.silent": "Monitor silent",
    "dev.lead-off": "Lead off",
    "dev.sensor-off": "Sensor off",
    "dev.sensor-on": "Sensor on",
    "dev.no-signal": "No signal",
    "unit./min": "/min",
    "unit.rr": "/min",
    "wave.Pleth": "Pleth",
    "wave.Resp": "Resp",
    "wave.CO2": "CO₂",
  },
};

const storageKey = "lifeline.ed.lang";
let current = pick(localStorage.getItem(storageKey));
const listeners = [];

function pick(l) {
  return dict[l] ? l : "zh-CN";
}

// lang is the language in use.
export function lang() {
  return current;
}

// has reports whether key has a translation.
export function has(key) {
  return key in dict[current];
}

// t translates key, filling {name} placeholders from vars. A missing key shows
// itself, so that a forgotten string is visible in review rather than blank.
export function t(key, vars) {
  const s = dict[current][key] ?? dict["zh-CN"][key] ?? key;
  return vars ? s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m)) : s;
}

// setLang switches the language, remembers it for this browser and redraws.
export function setLang(l) {
  current = pick(l);
  localStorage.setItem(storageKey, current);
  apply(document);
  for (const fn of listeners) fn(current);
}

// onLang calls fn after every language switch.
export function onLang(fn) {
  listeners.push(fn);
}

// apply fills every element marked data-i18n (text) or data-i18n-title (tooltip).
export function apply(root) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  document.title = t("app.title");
}

// toggleButton wires a button that switches between the two languages.
export function toggleButton(btn) {
  btn.addEventListener("click", () => setLang(current === "zh-CN" ? "en" : "zh-CN"));
  onLang(() => (btn.textContent = t("lang.toggle")));
  btn.textContent = t("lang.toggle");
}
