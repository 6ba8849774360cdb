import { Code, ConnectError } from "@connectrpc/connect";

/** Longest user id accepted, in UTF-8 bytes. */
export const MAX_USER_ID_BYTES = 128;

// C0 controls, DEL and C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Throws InvalidArgument unless `userId` is a usable id. */
export function checkUserId(userId: string): void {
  if (userId.length === 0) {
    throw new ConnectError("user_id is required", Code.InvalidArgument);
  }
  if (Buffer.byteLength(userId, "utf8") > MAX_USER_ID_BYTES) {
    throw new ConnectError(`user_id is longer than ${MAX_USER_ID_BYTES} bytes`, Code.InvalidArgument);
  }
  if (CONTROL.test(userId)) {
    throw new ConnectError("user_id contains a control character", Code.InvalidArgument);
  }
}
