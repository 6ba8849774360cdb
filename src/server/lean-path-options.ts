import type { DescService } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import type { Refused } from "../rpc/rpc-surface.js";
import type { BodyBudget } from "./body-budget.js";

/** What each lean path (gRPC, gRPC-web, Connect unary) serves with. */
export interface LeanPathOptions {
  services: readonly { service: DescService; impl: object }[];
  /** The same interceptors the Connect router runs. */
  interceptors: readonly Interceptor[];
  maxRequestBytes: number;
  /** What unfinished request bodies may hold together (past it: RESOURCE_EXHAUSTED). */
  bodyBudget: BodyBudget;
  /** A call answered before its interceptors ran (they never saw it): counted here. */
  refused?: Refused;
}
