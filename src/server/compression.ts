import { Code, ConnectError } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Compression } from "@connectrpc/connect/protocol";

/**
 * The compressions every transport takes (gzip and brotli, as connect-node by
 * default), with one change: a body that does not inflate is the client's
 * fault. connect-node calls only zlib's Z_DATA_ERROR so; a truncated gzip or
 * brotli stream (Z_BUF_ERROR and the like) came back INTERNAL (HTTP 500), which
 * anyone could raise at will. Too large after inflating stays RESOURCE_EXHAUSTED.
 */
export const ACCEPT_COMPRESSION: Compression[] = [clientFault(compressionGzip), clientFault(compressionBrotli)];

function clientFault(compression: Compression): Compression {
  return {
    name: compression.name,
    compress: (bytes) => compression.compress(bytes),
    decompress: (bytes, readMaxBytes) =>
      compression.decompress(bytes, readMaxBytes).catch((err: unknown) => {
        const error = ConnectError.from(err);
        if (error.code !== Code.Internal) throw error;
        throw new ConnectError(`the ${compression.name} body does not inflate`, Code.InvalidArgument, undefined, undefined, err);
      }),
  };
}
