/**
 * Configuration: environment variable names (all of them, in one place) and the recipe
 * format that `dynamo serve` reads. Flag parsing lives in cli/.
 * @module
 */
export { ENV, type EnvName, readEnv } from "./env.ts";
export {
  loadRecipe,
  parseRecipe,
  type Recipe,
  RECIPE_ENGINES,
  RecipeSchema,
  type WorkerGroup,
} from "./recipe.ts";
