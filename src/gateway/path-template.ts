import { Code, ConnectError } from "@connectrpc/connect";

/**
 * A google.api.http path template, limited to what our proto uses: literal
 * segments and single-segment variables (`{field}` or `{field=*}`). Anything else
 * is refused when the gateway starts, so a proto change cannot be half-served.
 */
export interface PathTemplate {
  readonly source: string;
  /** Literal text, or the request field a variable fills. */
  readonly segments: readonly ({ literal: string } | { field: string })[];
}

export function parsePathTemplate(source: string): PathTemplate {
  if (!source.startsWith("/")) throw new Error(`http rule path ${source} must start with /`);
  const segments = source
    .slice(1)
    .split("/")
    .map((segment) => {
      const variable = /^\{([a-z_][a-z0-9_]*)(?:=\*)?\}$/.exec(segment);
      if (variable?.[1]) return { field: variable[1] };
      if (/[{}*:]/.test(segment)) throw new Error(`http rule path ${source}: segment ${segment} is not supported`);
      return { literal: segment };
    });
  return { source, segments };
}

/**
 * The variables' values when `path` matches, else undefined. A variable whose
 * segment is not valid percent-encoding matches, its value the error: the route
 * is found (and the call refused as that RPC's), where another path is a 404.
 */
export function matchPath(template: PathTemplate, path: string): Map<string, string | ConnectError> | undefined {
  const parts = path.slice(1).split("/");
  if (parts.length !== template.segments.length) return undefined;
  const values = new Map<string, string | ConnectError>();
  for (const [i, segment] of template.segments.entries()) {
    const part = parts[i] ?? "";
    if ("literal" in segment) {
      if (part !== segment.literal) return undefined;
      continue;
    }
    if (part === "") return undefined;
    try {
      values.set(segment.field, decodeURIComponent(part));
    } catch {
      values.set(segment.field, new ConnectError(`path segment ${part} is not valid percent-encoding`, Code.InvalidArgument));
    }
  }
  return values;
}
