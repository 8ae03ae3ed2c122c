/** The release version; `dynamo --version` prints it. Kept equal to package.json's. */
export const VERSION = "0.1.0";
