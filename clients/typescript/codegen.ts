import { createHash } from "node:crypto";
import type { CodegenConfig } from "@graphql-codegen/cli";

/**
 * The client preset hashes each operation with sha256 and by default writes
 * plain hex ids. The gateway (like the GraphQL-over-HTTP draft's persisted
 * documents appendix) names a document `sha256:<hex>`, so the id carries the
 * prefix: the same string is then the manifest's key, the `__meta__.hash` of
 * each generated document, and the `documentId` a client sends.
 */
const documentId = (document: string): string =>
  `sha256:${createHash("sha256").update(document).digest("hex")}`;

const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["src/**/*.ts", "!src/gql/**/*"],
  generates: {
    "./src/gql/": {
      preset: "client",
      presetConfig: {
        persistedDocuments: { hashAlgorithm: documentId },
        // Not a React app: the preset's default name, `useFragment`, reads
        // like a hook.
        fragmentMasking: { unmaskFunctionName: "getFragmentData" },
      },
      config: {
        // Scalars the schema defines, as they arrive in JSON.
        scalars: { DateTime: "string", JSON: "unknown" },
        useTypeImports: true,
      },
    },
  },
  ignoreNoDocuments: false,
};

export default config;
