// Korean and English text for both pages. Static text is marked in the HTML with
// data-i18n="key" (and data-i18n-attr="aria-label" etc. for attributes);
// dynamic text comes from t(key, values).

const en = {
  "app.title": "Train ticket queue",
  "lang.switch": "한국어",
  "waiting.heading": "Wait for your seat",
  "waiting.intro": "Choose a train and join its line. Your place is kept if you reload or continue on another device.",
  "waiting.train": "Train",
  "waiting.noTrains": "No train is on sale right now.",
  "waiting.join": "Join the line",
  "waiting.joining": "Joining…",
  "waiting.solving": "Checking your browser… {percent}%",
  "identity.signedIn": "Signed in as {user}",
  "identity.replace": "This browser is signed in as {current}. The link you opened signs in as {next}: switch to {next}? (The place of {current} stays theirs.)",
  "waiting.seatsLeft": "{free} of {capacity} seats free, {waiting} waiting",
  "waiting.stateUpcoming": "opens later",
  "waiting.statePaused": "paused",
  "waiting.stateClosed": "closed",
  "status.heading": "Your place",
  "status.queued": "You are number {position} in line.",
  "status.prequeued": "Waiting for the opening at {time}: your place will be drawn then.",
  "status.drawn": "Your place was drawn: number {place} of the early arrivals.",
  "status.queuedShort": "No. {position}",
  "status.wait": "Estimated wait: {wait}.",
  "status.waitUnknown": "Estimated wait: not known yet.",
  "status.reserved": "You have a seat on {train}.",
  "status.promoted": "Your turn came: you have a seat on {train}!",
  "status.hold": "Confirm your seat within {time}, or it passes to the next person.",
  "status.confirmed": "Your seat is confirmed.",
  "status.cancelled": "You left the line. Your seat or place has passed on.",
  "status.expired": "Your hold ran out and the seat passed on.",
  "status.notFound": "Your place is gone (the sale was reset).",
  "status.alreadyInLine": "You are already in this line from an earlier visit: open the link you kept to follow it there.",
  "status.reconnecting": "Connection lost; reconnecting…",
  "status.live": "Live",
  "status.confirm": "Confirm my seat",
  "status.cancel": "Leave the line",
  "status.cancelSeat": "Give up my seat",
  "status.joinAgain": "Choose another train",
  "status.otherDevice": "Continue on another device",
  "status.otherDeviceHelp": "Open this link on your other device. Keep it private: it is your place in line.",
  "status.copy": "Copy link",
  "status.copied": "Link copied.",
  "wait.minutes": "about {n} min",
  "wait.seconds": "under a minute",
  "error.generic": "Something went wrong: {message}",
  "admin.heading": "Operator dashboard",
  "admin.signIn": "Sign in",
  "admin.token": "Admin token or JWT",
  "admin.signOut": "Sign out",
  "admin.badToken": "That token was refused.",
  "admin.events": "Trains",
  "admin.col.train": "Train",
  "admin.col.state": "State",
  "admin.col.capacity": "Capacity",
  "admin.col.reserved": "Reserved",
  "admin.col.held": "Held",
  "admin.col.waiting": "Waiting",
  "admin.col.cancelled": "Cancelled",
  "admin.col.live": "Live",
  "admin.live": "live",
  "admin.notLive": "select to follow",
  "admin.select": "Manage",
  "admin.create": "New train",
  "admin.eventId": "Id (letters, digits, . _ -)",
  "admin.name": "Name",
  "admin.capacity": "Seats",
  "admin.holdSeconds": "Hold for confirmation (seconds, 0 = none)",
  "admin.maxWaiting": "Most waiting (0 = no limit; empty: the service's default)",
  "admin.powDifficulty": "Proof of work per join (difficulty, 0 = none; 50,000 takes a phone about half a second)",
  "admin.createButton": "Create",
  "admin.created": "Created {id}.",
  "admin.manage": "Manage {train}",
  "admin.chart": "Joins and promotions per second, last {minutes} min",
  "admin.chartSummary": "Last second: {joins} joins, {promotions} promotions.",
  "admin.joins": "joins",
  "admin.promotions": "promotions",
  "admin.setCapacity": "Set seats",
  "admin.capacitySet": "Seats set to {capacity}; {promoted} promoted from the line.",
  "admin.pause": "Pause sales",
  "admin.resume": "Resume sales",
  "admin.paused": "Sales paused.",
  "admin.resumed": "Sales resumed.",
  "admin.process": "Process the queue",
  "admin.processed": "{count} promoted.",
  "admin.export": "Export seat holders (CSV)",
  "admin.exported": "{count} seat holders exported.",
  "admin.reset": "Reset this train…",
  "admin.resetConfirm": "This removes every seat and every place in line of {train}. Type {id} to confirm.",
  "admin.resetConfirmLabel": "Train id to confirm",
  "admin.resetDo": "Reset now",
  "admin.resetCancel": "Keep it",
  "admin.resetDone": "Reset: {reserved} seats and {waiting} places cleared.",
  "admin.support": "Support desk",
  "admin.userId": "User id",
  "admin.lookUp": "Look up",
  "admin.userStatus": "{user}: {status}",
  "admin.cancelUser": "Cancel this user",
  "admin.userCancelled": "{user} cancelled; {promoted} promoted.",
  "state.open": "open",
  "state.upcoming": "not open yet",
  "state.paused": "paused",
  "state.closed": "closed",
  "status.RESERVED": "reserved",
  "status.QUEUED": "waiting, no. {position}",
  "status.PREQUEUED": "in the pre-queue",
  "status.ABANDONED": "left the line (away too long)",
  "status.abandoned": "You left the line: nothing showed you were still here for too long. Join again at the back.",
  "status.NOT_FOUND": "not found",
  "status.CANCELLED": "cancelled",
  "status.EXPIRED": "hold expired",
};

export type TextKey = keyof typeof en;

const ko: Record<TextKey, string> = {
  "app.title": "승차권 대기열",
  "lang.switch": "English",
  "waiting.heading": "좌석을 기다리세요",
  "waiting.intro": "열차를 고르고 대기열에 들어가세요. 새로고침하거나 다른 기기에서 이어가도 순서가 유지됩니다.",
  "waiting.train": "열차",
  "waiting.noTrains": "지금 판매 중인 열차가 없습니다.",
  "waiting.join": "대기열 들어가기",
  "waiting.joining": "들어가는 중…",
  "waiting.solving": "브라우저 확인 중… {percent}%",
  "identity.signedIn": "{user}(으)로 로그인됨",
  "identity.replace": "이 브라우저는 {current}(으)로 로그인되어 있습니다. 연 링크는 {next}(으)로 로그인합니다. {next}(으)로 바꿀까요? ({current}의 순서는 그대로 남습니다.)",
  "waiting.seatsLeft": "좌석 {capacity}석 중 {free}석 남음, {waiting}명 대기 중",
  "waiting.stateUpcoming": "판매 전",
  "waiting.statePaused": "일시 중지",
  "waiting.stateClosed": "판매 종료",
  "status.heading": "내 순서",
  "status.queued": "대기 순번 {position}번입니다.",
  "status.prequeued": "{time} 오픈을 기다리는 중입니다. 그때 순번이 추첨됩니다.",
  "status.drawn": "추첨된 순번: 사전 대기자 중 {place}번입니다.",
  "status.queuedShort": "{position}번",
  "status.wait": "예상 대기 시간: {wait}.",
  "status.waitUnknown": "예상 대기 시간: 아직 알 수 없습니다.",
  "status.reserved": "{train} 좌석을 확보했습니다.",
  "status.promoted": "차례가 되었습니다: {train} 좌석을 확보했습니다!",
  "status.hold": "{time} 안에 좌석을 확정하세요. 확정하지 않으면 다음 분께 넘어갑니다.",
  "status.confirmed": "좌석이 확정되었습니다.",
  "status.cancelled": "대기열에서 나갔습니다. 좌석이나 순서는 다음 분께 넘어갔습니다.",
  "status.expired": "확정 시간이 지나 좌석이 다음 분께 넘어갔습니다.",
  "status.notFound": "순서가 없어졌습니다 (판매가 초기화되었습니다).",
  "status.alreadyInLine": "이전에 이미 이 대기열에 들어와 있습니다. 보관한 링크를 열어 이어가세요.",
  "status.reconnecting": "연결이 끊겼습니다. 다시 연결하는 중…",
  "status.live": "실시간",
  "status.confirm": "좌석 확정",
  "status.cancel": "대기열 나가기",
  "status.cancelSeat": "좌석 포기",
  "status.joinAgain": "다른 열차 고르기",
  "status.otherDevice": "다른 기기에서 이어가기",
  "status.otherDeviceHelp": "다른 기기에서 이 링크를 여세요. 내 순서이니 다른 사람과 공유하지 마세요.",
  "status.copy": "링크 복사",
  "status.copied": "링크를 복사했습니다.",
  "wait.minutes": "약 {n}분",
  "wait.seconds": "1분 이내",
  "error.generic": "문제가 생겼습니다: {message}",
  "admin.heading": "운영 대시보드",
  "admin.signIn": "로그인",
  "admin.token": "관리자 토큰 또는 JWT",
  "admin.signOut": "로그아웃",
  "admin.badToken": "토큰이 거부되었습니다.",
  "admin.events": "열차",
  "admin.col.train": "열차",
  "admin.col.state": "상태",
  "admin.col.capacity": "좌석",
  "admin.col.reserved": "예약",
  "admin.col.held": "확정 대기",
  "admin.col.waiting": "대기",
  "admin.col.cancelled": "취소",
  "admin.col.live": "실시간",
  "admin.live": "실시간",
  "admin.notLive": "선택하면 실시간",
  "admin.select": "관리",
  "admin.create": "새 열차",
  "admin.eventId": "아이디 (영문, 숫자, . _ -)",
  "admin.name": "이름",
  "admin.capacity": "좌석 수",
  "admin.holdSeconds": "확정 대기 시간 (초, 0 = 없음)",
  "admin.maxWaiting": "최대 대기 인원 (0 = 제한 없음, 비우면 서비스 기본값)",
  "admin.powDifficulty": "참여마다 작업 증명 (난이도, 0 = 없음, 50,000이면 휴대폰에서 약 0.5초)",
  "admin.createButton": "만들기",
  "admin.created": "{id}을(를) 만들었습니다.",
  "admin.manage": "{train} 관리",
  "admin.chart": "초당 입장과 승급, 최근 {minutes}분",
  "admin.chartSummary": "최근 1초: 입장 {joins}, 승급 {promotions}.",
  "admin.joins": "입장",
  "admin.promotions": "승급",
  "admin.setCapacity": "좌석 수 변경",
  "admin.capacitySet": "좌석 {capacity}석으로 변경; 대기열에서 {promoted}명 승급.",
  "admin.pause": "판매 일시 중지",
  "admin.resume": "판매 재개",
  "admin.paused": "판매를 일시 중지했습니다.",
  "admin.resumed": "판매를 재개했습니다.",
  "admin.process": "대기열 처리",
  "admin.processed": "{count}명 승급.",
  "admin.export": "좌석 보유자 내보내기 (CSV)",
  "admin.exported": "좌석 보유자 {count}명을 내보냈습니다.",
  "admin.reset": "이 열차 초기화…",
  "admin.resetConfirm": "{train}의 모든 좌석과 대기 순서가 지워집니다. 확인하려면 {id}을(를) 입력하세요.",
  "admin.resetConfirmLabel": "확인용 열차 아이디",
  "admin.resetDo": "지금 초기화",
  "admin.resetCancel": "취소",
  "admin.resetDone": "초기화: 좌석 {reserved}석, 대기 {waiting}명 삭제.",
  "admin.support": "고객 지원",
  "admin.userId": "사용자 아이디",
  "admin.lookUp": "조회",
  "admin.userStatus": "{user}: {status}",
  "admin.cancelUser": "이 사용자 취소",
  "admin.userCancelled": "{user} 취소; {promoted}명 승급.",
  "state.open": "판매 중",
  "state.upcoming": "판매 전",
  "state.paused": "일시 중지",
  "state.closed": "판매 종료",
  "status.RESERVED": "예약됨",
  "status.QUEUED": "대기 {position}번",
  "status.PREQUEUED": "사전 대기 중",
  "status.ABANDONED": "대기 이탈 (장시간 부재)",
  "status.abandoned": "오랫동안 접속이 확인되지 않아 대기열에서 빠졌습니다. 다시 줄을 서면 맨 뒤에서 시작합니다.",
  "status.NOT_FOUND": "없음",
  "status.CANCELLED": "취소됨",
  "status.EXPIRED": "확정 시간 초과",
};

const texts = { en, ko } as const;
export type Lang = keyof typeof texts;

const STORAGE_KEY = "tq.lang";

export function currentLang(): Lang {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved === "en" || saved === "ko") return saved;
  return navigator.language.toLowerCase().startsWith("ko") ? "ko" : "en";
}

export function t(key: TextKey, values: Record<string, string | number> = {}): string {
  return texts[currentLang()][key].replace(/\{(\w+)\}/g, (_, name: string) => String(values[name] ?? `{${name}}`));
}

/** Fills every [data-i18n] element and sets <html lang>; `onChange` redraws dynamic text. */
export function applyTexts(): void {
  document.documentElement.lang = currentLang();
  for (const el of document.querySelectorAll<HTMLElement>("[data-i18n]")) {
    const key = el.dataset["i18n"] as TextKey;
    const attr = el.dataset["i18nAttr"];
    if (attr) el.setAttribute(attr, t(key));
    else el.textContent = t(key);
  }
  document.title = `${t(document.body.dataset["titleKey"] as TextKey)} · ${t("app.title")}`;
}

/** Wires the language button; `redraw` repaints what the page drew itself. */
export function setUpLanguageSwitch(button: HTMLButtonElement, redraw: () => void): void {
  const paint = (): void => {
    applyTexts();
    // The button names the other language in that language: say so to screen readers.
    button.lang = currentLang() === "ko" ? "en" : "ko";
  };
  paint();
  button.addEventListener("click", () => {
    localStorage.setItem(STORAGE_KEY, currentLang() === "ko" ? "en" : "ko");
    paint();
    redraw();
  });
}
